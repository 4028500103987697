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
