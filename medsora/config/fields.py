"""Field helpers shared by the typed config schemas."""
from __future__ import annotations

import dataclasses
from typing import Any


def choice(default: Any, *choices: Any) -> Any:
    """A dataclass field whose value (or every item of a list value) must be one of ``choices``.

    ``medsora.config.loader`` checks it and names the key and file on a bad value.
    """
    allowed = tuple(choices) if choices else (default,)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"choices": allowed})
    if default is not None and default not in allowed:
        raise ValueError(f"default {default!r} not among {allowed}")
    return dataclasses.field(default=default, metadata={"choices": allowed})


_YAML_BOOLS = {"False": "off", "True": "on"}


def yaml_word(value: Any, choices: tuple) -> Any:
    """``value`` of a choice field as the user meant it: YAML 1.1 reads a bare off/no (on/yes) as a boolean,
    which a str field stores as 'False' ('True'); for a choice that offers 'off' ('on') that word was meant
    (``vae.lpips=off``). Any other value is returned as it is."""
    if isinstance(value, str) and value in _YAML_BOOLS and value not in choices and _YAML_BOOLS[value] in choices:
        return _YAML_BOOLS[value]
    return value


def bounded(default: Any, lo: Any = None, hi: Any = None, *, also: tuple = ()) -> Any:
    """A numeric field whose value must lie in ``[lo, hi]`` (either end open when None) or be one of ``also``.

    Float values must also be finite. The upper ends keep a typo (``data.size=1e20``) from reaching
    an allocation; ``also`` names special values outside the range (``-1`` = unlimited).
    """
    return dataclasses.field(default=default, metadata={"range": (lo, hi), "also": tuple(also)})


def path_to(kind: str = "file", *, keywords: tuple = ()) -> Any:
    """An optional path field (default None) that must exist when set: ``kind`` is file, dir or any.

    ``keywords`` are values that are not paths (``align.teacher.weights: random``).
    """
    if kind not in ("file", "dir", "any"):
        raise ValueError(f"kind {kind!r} is not file, dir or any")
    return dataclasses.field(default=None, metadata={"path": kind, "keywords": tuple(keywords)})


def field_problem(value: Any, metadata: Any) -> str | None:
    """What is wrong with ``value`` for a field made by :func:`bounded` or :func:`path_to` (None: nothing).

    Choices are checked by the loader itself (``choice``).
    """
    import math
    from pathlib import Path

    if value is None:
        return None
    if "range" in metadata:
        if value in metadata["also"]:
            return None
        lo, hi = metadata["range"]
        also = f" (or {', '.join(map(str, metadata['also']))})" if metadata["also"] else ""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number{also}"
        if lo is not None and not lo <= value:
            return f"must be >= {lo}{also}" + (f" and <= {hi}" if hi is not None else "")
        if hi is not None and not value <= hi:
            return f"must be <= {hi}{also}" + (f" and >= {lo}" if lo is not None else "")
    if "path" in metadata and value not in metadata["keywords"]:
        path = Path(str(value)).expanduser()
        kind = metadata["path"]
        if not path.exists():
            hint = f" (or one of {list(metadata['keywords'])})" if metadata["keywords"] else ""
            return f"no such {dict(file='file', dir='folder', any='file or folder')[kind]}: {path.resolve()}{hint}"
        if kind == "file" and not path.is_file():
            return f"is a folder, not a file: {path.resolve()}"
        if kind == "dir" and not path.is_dir():
            return f"is a file, not a folder: {path.resolve()}"
    return None

def section(schema: type, config: Any = None, overrides: dict | None = None) -> Any:
    """The typed settings a component is built from: one ``schema`` dataclass instance.

    A component's constructor takes its whole config section (as DiT passes its ``args``), so
    a new option is a schema field plus the code that reads it, with no argument lists to
    thread it through.

    Args:
        schema: the section's dataclass (``ModelConfig``, ``VAEConfig``, ``CondConfig``).
        config: an instance of ``schema`` (used as is), that section of a composed ``DictConfig``
            (converted), a mapping of its fields, or ``None`` for the schema's defaults.
        overrides: keyword arguments replacing fields (``MedSoraDiT(4, depth=3)``).
    Raises:
        TypeError: an override or mapping key that is no field of ``schema``, naming it and the fields.
    """
    if config is None:
        cfg = schema()
    elif isinstance(config, schema):
        cfg = config
    else:
        from omegaconf import OmegaConf

        tree = OmegaConf.to_object(config) if OmegaConf.is_config(config) else config
        if isinstance(tree, schema):
            cfg = tree
        elif isinstance(tree, dict):
            _check_names(schema, tree)
            cfg = schema(**tree)
        else:
            raise TypeError(f"expected a {schema.__name__} (or its config section), got {type(config).__name__}")
    if overrides:
        _check_names(schema, overrides)
        cfg = dataclasses.replace(cfg, **overrides)
    return cfg


def _check_names(schema: type, values: dict) -> None:
    names = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TypeError(f"unknown {schema.__name__} setting(s) {unknown}; the settings are {sorted(names)}")
