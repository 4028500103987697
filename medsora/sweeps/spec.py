"""Sweep files: parse, expand into variants, validate every variant before anything runs.

A sweep file (``configs/sweep/NAME.yaml``)::

    base: demo_diffusion            # experiment every variant starts from
    overrides: [trainer.max_steps=200]   # applied to every variant
    variants:                       # named variants: a list of overrides each
      medsora: []
      full_attn: ["model.blocks=[full_attn]"]
    grid:                           # and/or a cartesian grid: key -> values
      model.bidirectional: [true, false]
    match_params: medsora           # optional: re-size every other variant's backbone (width, then
                                    # depth) to within ±5 % of this variant's parameter count
    prepare_vae: vae_demo           # optional: train this VAE experiment and write the encode
                                    # cache once per distinct vae.* setting, and point every
                                    # variant at them (vae.ckpt, data.cache)
    evaluate:                       # optional: sample and score each variant
      real: demo                    # folder/manifest of real videos ("demo" = the demo set)
      metrics: [fvd, temporal_flickering]
      num: 16

With both ``variants`` and ``grid`` every named variant is crossed with every grid
point. Variant names are made from the grid values when there are no names.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsora.config import ConfigError, compose
from medsora.config.yaml_io import YAMLInputError, read_yaml_file

_ALLOWED = {"base", "overrides", "variants", "grid", "evaluate", "description", "prepare_vae", "match_params"}
_EVAL_ALLOWED = {"real", "metrics", "num", "steps", "sampler"}


@dataclass
class Variant:
    """One run of a sweep: its name and the overrides on top of the base experiment."""

    name: str
    overrides: list[str]


@dataclass
class SweepSpec:
    name: str
    base: str
    variants: list[Variant]
    evaluate: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    prepare_vae: str | None = None  # a stage: vae experiment trained once per distinct vae.* setting
    match_params: str | None = None  # size every other variant's backbone to this variant's parameter count


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    return str(value)


def _slug(text: str) -> str:
    """A folder name from a variant name: letters, digits, ``_ . -``; no leading dots (``..`` stays inside --out)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "variant"


def _as_overrides(items: Any, where: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
        raise ConfigError(f"{where}: expected a list of 'key=value' strings, got {items!r}")
    return list(items)


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse a sweep file (a path, or the name of ``sweep/<name>.yaml`` on the config search path)
    and expand it into variants (not yet validated)."""
    path = Path(path)
    if not path.is_file() and path.suffix == "" and len(path.parts) == 1:
        from medsora.config.loader import find_config

        path = find_config("sweep", str(path), "sweep", file_hint="the path of a sweep .yaml")
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path} (give a file, or the name of a sweep/<name>.yaml on the "
                          "config search path: --config-dir / $MEDSORA_CONFIG_PATH / the shipped configs)")
    try:
        data = read_yaml_file(path) or {}  # bounded (alias bombs), one-line errors
    except YAMLInputError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with 'base' and 'variants'/'grid'")
    unknown = set(data) - _ALLOWED
    if unknown:
        raise ConfigError(f"{path}: unknown sweep keys {sorted(unknown)} (allowed: {sorted(_ALLOWED)})")
    if not isinstance(data.get("base"), str):
        raise ConfigError(f"{path}: 'base' must name an experiment (configs/experiment/NAME.yaml)")
    common = _as_overrides(data.get("overrides"), f"{path}: overrides")

    named = data.get("variants") or {}
    if not isinstance(named, dict):
        raise ConfigError(f"{path}: 'variants' must map a name to a list of overrides")
    named_list = [(str(n), _as_overrides(o, f"{path}: variants.{n}")) for n, o in named.items()]

    grid = data.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' must map a key to a non-empty list of values")
    grid_points: list[tuple[str, list[str]]] = []
    for combo in (itertools.product(*grid.values()) if grid else ()):
        parts = [f"{k}={_format_value(v)}" for k, v in zip(grid, combo)]
        label = "_".join(f"{k.split('.')[-1]}-{_format_value(v)}" for k, v in zip(grid, combo))
        grid_points.append((label, parts))

    if not named_list and not grid_points:
        raise ConfigError(f"{path}: no variants: give 'variants' and/or 'grid'")
    named_list = named_list or [("", [])]
    grid_points = grid_points or [("", [])]
    variants = []
    for (vname, vover), (gname, gover) in itertools.product(named_list, grid_points):
        name = _slug("_".join(p for p in (vname, gname) if p))
        variants.append(Variant(name, common + vover + gover))
    names = [v.name for v in variants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: variant names repeat: {dupes}")

    evaluate = data.get("evaluate") or {}
    if not isinstance(evaluate, dict) or set(evaluate) - _EVAL_ALLOWED:
        raise ConfigError(f"{path}: 'evaluate' keys must be among {sorted(_EVAL_ALLOWED)}")
    prepare_vae = data.get("prepare_vae")
    if prepare_vae is not None and not isinstance(prepare_vae, str):
        raise ConfigError(f"{path}: 'prepare_vae' must name a stage: vae experiment")
    match = data.get("match_params")
    if match is not None and match not in names:
        raise ConfigError(f"{path}: match_params: '{match}' is not a variant (variants: {names})")
    return SweepSpec(path.stem, data["base"], variants, evaluate, str(data.get("description", "")), prepare_vae, match)


def validate(spec: SweepSpec, extra: list[str] | None = None) -> dict[str, Any]:
    """Compose every variant's config; the first bad one fails naming the variant.

    With ``spec.match_params`` the re-sizing overrides are appended to the variants concerned
    (:func:`medsora.sweeps.matching.match_parameters`) and those variants are composed again.

    Returns ``{variant name: composed config}``.
    """
    configs = _compose_all(spec, extra)
    if spec.match_params:
        from medsora.sweeps.matching import match_parameters

        sizes = match_parameters(configs, spec.match_params)
        for variant in spec.variants:
            variant.overrides = [*variant.overrides, *sizes.get(variant.name, [])]
        configs = _compose_all(spec, extra)
    return configs


def _compose_all(spec: SweepSpec, extra: list[str] | None) -> dict[str, Any]:
    configs = {}
    for variant in spec.variants:
        try:
            configs[variant.name] = compose(spec.base, list(variant.overrides) + list(extra or []))
            check_model(configs[variant.name])
            if spec.prepare_vae:
                cfg = compose(spec.prepare_vae, [*vae_only(variant.overrides), *(extra or [])])
                if cfg.stage != "vae":
                    raise ConfigError(f"prepare_vae: experiment '{spec.prepare_vae}' has stage '{cfg.stage}', not 'vae'")
        except ConfigError as err:
            raise ConfigError(f"sweep '{spec.name}', variant '{variant.name}': {err}") from None
    return configs


def check_model(cfg) -> None:
    """Build a diffusion variant's backbone on the meta device (no memory, no weights).

    What composing cannot see fails here, before any variant runs: an ``align.tap`` that is not
    in ``model.blocks``, heads that do not divide the width, an unknown block name, ...

    Raises:
        ConfigError: the backbone refuses the settings (its message names them).
    """
    if cfg.stage != "diffusion":
        return
    import torch

    from medsora.training.model_factory import build_backbone

    try:
        with torch.device("meta"):
            build_backbone(cfg)
    except (ValueError, KeyError) as err:
        raise ConfigError(f"the backbone cannot be built: {err}") from None


def vae_only(overrides: list[str]) -> list[str]:
    """The overrides that change the VAE: they select a variant's shared VAE checkpoint and cache."""
    return [o for o in overrides if o.startswith("vae.")]
