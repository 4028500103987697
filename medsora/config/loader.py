"""Load, compose, override and validate run configurations.

A run is described by YAML files under ``configs/``:

* ``configs/<group>/<name>.yaml`` — one component (``data``, ``vae``, ``model``,
  ``diffusion``, ``align``, ``cond``, ``trainer``, ``train``);
* ``configs/experiment/<name>.yaml`` — a whole run: a ``defaults:`` list naming
  component files (``- model: tiny``) or another experiment to extend
  (``- experiment: demo``), then overrides of any key.

Command-line arguments are OmegaConf dotlist overrides (``data.size=128``); a bare
group name swaps a component file (``model=medsora_b``) — it replaces the experiment's
defaults entry for that group (the experiment's own keys still apply on top), ``experiment=NAME`` picks
the experiment.

Files are looked up along a *search path* (:mod:`medsora.config.search`): the folders of ``--config-dir DIR`` (repeatable) and of
``$MEDSORA_CONFIG_PATH`` (``os.pathsep``-separated), in that order, then the shipped ``configs/``
(installed with the package). The first folder holding ``<group>/<name>.yaml`` wins, so a user of an
installed package keeps their own experiment/model/data files whose ``defaults:`` name shipped ones.
A name ending in ``.yaml`` (``experiment=runs/my_run.yaml``, ``- model: ../my_model.yaml``) is a file
path: relative to the current folder on the command line, to the naming file in a ``defaults:`` list. Everything is merged into the typed dataclass schema
:class:`medsora.config.schema.RunConfig`, one source at a time, so an unknown key, a wrong
type, a value outside its allowed choices or a missing required key fails at
start-up with the full key path *and* the file (or "command line") it came from.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from medsora.config.errors import ConfigError  # noqa: F401  (re-exported: medsora.config.ConfigError)
from medsora.config.fields import field_problem, yaml_word
from medsora.config.schema import GROUPS, RunConfig
from medsora.config.search import (PATH_ENV, add_config_dir_argument, config_dir, find_config, list_configs,
                                   search_path, use_config_dirs)
from medsora.config.search import group_file as _group_file
from medsora.config.yaml_io import YAMLInputError, load_yaml_text, read_yaml_file, yaml_error_line

__all__ = ["ConfigError", "config_dir", "search_path", "use_config_dirs", "add_config_dir_argument", "find_config",
           "compose", "parse_cli", "to_yaml", "list_configs", "PATH_ENV"]


def _read_yaml(path: Path) -> dict:
    try:
        data = read_yaml_file(path)  # bounded: refuses alias bombs and oversized files
    except YAMLInputError as err:
        raise ConfigError(str(err)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _flatten(tree: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


class _Composer:
    """Merges sources into the structured schema, remembering where each key came from."""

    def __init__(self, path: list[Path], swaps: dict[str, str] | None = None):
        self.path = path
        self.swaps = dict(swaps or {})  # group -> file chosen on the command line
        self.used_swaps: set[str] = set()
        self.cfg: DictConfig = OmegaConf.structured(RunConfig)
        self.origin: dict[str, str] = {}
        self._visiting: list[str] = []

    def merge(self, tree: dict, source: str) -> None:
        try:
            self.cfg = OmegaConf.merge(self.cfg, OmegaConf.create(tree))
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            msg = str(err).splitlines()[0]
            raise ConfigError(f"{source}: invalid key '{key}': {msg}") from None
        for key in _flatten(tree):
            self.origin[key] = source
            if _get(tree, key) == "???":  # OmegaConf's merge keeps the old value under '???'
                OmegaConf.update(self.cfg, key, "???", merge=False)

    def component(self, group: str, name: str, origin: str, base: Path | None = None) -> None:
        path = _group_file(self.path, group, name, origin, base)
        tree = _read_yaml(path)
        if "defaults" in tree:
            raise ConfigError(f"{path}: component files cannot have a 'defaults' list")
        self.merge({group: tree}, str(path))

    def experiment(self, name: str, origin: str, base: Path | None = None) -> None:
        path = _group_file(self.path, "experiment", name, origin, base).resolve()
        if str(path) in self._visiting:
            raise ConfigError(f"{path}: experiment defaults form a cycle: {' -> '.join(self._visiting)}")
        self._visiting.append(str(path))
        tree = _read_yaml(path)
        defaults = tree.pop("defaults", []) or []
        if not isinstance(defaults, list):
            raise ConfigError(f"{path}: 'defaults' must be a list like '- model: tiny'")
        self_done = False
        for entry in defaults:
            if entry == "_self_":
                self.merge(tree, str(path))
                self_done = True
                continue
            if not (isinstance(entry, dict) and len(entry) == 1):
                raise ConfigError(f"{path}: defaults entry {entry!r} must be '- group: name' or '_self_'")
            (group, value), = entry.items()
            group = str(group).lstrip("/")
            if group == "experiment":
                self.experiment(str(value), str(path), path.parent)
            elif group in GROUPS:
                if group in self.swaps:  # the command line replaces this defaults entry, like Hydra
                    self.used_swaps.add(group)
                    self.component(group, self.swaps[group], "command line")
                else:
                    self.component(group, str(value), str(path), path.parent)
            else:
                raise ConfigError(f"{path}: unknown defaults group '{group}' (groups: experiment, {', '.join(GROUPS)})")
        if not self_done:
            self.merge(tree, str(path))
        self._visiting.pop()


def parse_cli(args: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """Split ``key=value`` arguments into (experiment, group swaps, dotlist overrides)."""
    experiment, swaps, dotlist = None, [], []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"command line: '{arg}' is not a 'key=value' override")
        key, value = arg.split("=", 1)
        if key == "experiment":
            experiment = value
        elif key in GROUPS and value and not value.startswith(("{", "[")):
            swaps.append(arg)
        else:
            dotlist.append(arg)
    return experiment, swaps, dotlist


def _source(origin: dict[str, str], key: str) -> str:
    """Where ``key`` (or the nearest section or list holding it) was set."""
    while key:
        if key in origin:
            return origin[key]
        key = key.rpartition(".")[0]
    return "defaults"


def _check_values(cfg: DictConfig, schema: type, prefix: str, origin: dict[str, str]) -> None:
    """Every field's own constraints (choices, bounds, paths that must exist), then each section's
    ``checks`` rules between fields; the first problem fails naming the key and its source."""
    for field in dataclasses.fields(schema):
        key = f"{prefix}.{field.name}" if prefix else field.name
        value = cfg[field.name]
        sub = field.default_factory() if field.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(sub):
            _check_values(value, type(sub), key, origin)
            continue
        if OmegaConf.is_missing(cfg, field.name) or value is None:
            continue
        problem = field_problem(value, field.metadata)
        if problem:
            raise ConfigError(f"{_source(origin, key)}: '{key}' = {value!r} {problem}")
        choices = field.metadata.get("choices")
        if choices is None:
            continue
        word = yaml_word(value, choices)
        if word is not value:
            value = cfg[field.name] = word
        items = list(value) if OmegaConf.is_list(value) else [value]
        for item in items:
            if item not in choices:
                source = origin.get(key, "defaults")
                raise ConfigError(f"{source}: '{key}' = {item!r} is not one of {list(choices)}")
    rules = getattr(schema, "checks", None)
    for name, problem in (rules(cfg) if rules else ()):
        key = f"{prefix}.{name}" if prefix else name
        value = OmegaConf.select(cfg, name)
        shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        raise ConfigError(f"{_source(origin, key)}: '{key}' = {shown!r} {problem}")


def _interpolated(node: Any, prefix: str = "") -> Iterable[tuple[Any, Any, str]]:
    """(parent, name, dotted key) of every ``${...}`` value under ``node``."""
    names = range(len(node)) if OmegaConf.is_list(node) else list(node.keys()) if OmegaConf.is_dict(node) else ()
    for name in names:
        key = f"{prefix}.{name}" if prefix else str(name)
        if OmegaConf.is_interpolation(node, name):
            yield node, name, key
            continue
        child = node._get_node(name)
        if OmegaConf.is_config(child):
            yield from _interpolated(child, key)


def _resolve(cfg: DictConfig, origin: dict[str, str]) -> None:
    """Resolve every ``${...}`` (``${oc.env:VAR}``, references) now, each value checked against its type."""
    for parent, name, key in list(_interpolated(cfg)):
        try:
            parent[name]
        except OmegaConfBaseException as err:
            msg = " ".join(str(err).split("\n")[0].split())
            raise ConfigError(f"{_source(origin, key)}: '{key}' cannot be resolved: {msg}") from None
    OmegaConf.resolve(cfg)


def compose(experiment: str | None = None, overrides: Sequence[str] = (), root: Path | None = None) -> DictConfig:
    """Build the validated config of a run.

    Args:
        experiment: name of ``experiment/<name>.yaml`` on the search path, or a ``.yaml`` file; ``None`` uses the
            schema defaults plus the overrides alone.
        overrides: command-line style ``key=value`` strings (group swaps allowed).
        root: the only configs folder to search (default: :func:`search_path`).
    Returns:
        A read-only structured ``DictConfig`` typed by :class:`RunConfig`.
    Raises:
        ConfigError: naming the key path and its source file for any problem.
    """
    cli_experiment, swaps, dotlist = parse_cli(list(overrides))
    experiment = cli_experiment or experiment
    comp = _Composer(search_path(root), dict(swap.split("=", 1) for swap in swaps))
    if experiment:
        comp.experiment(experiment, "command line")
    for group, name in comp.swaps.items():  # groups the experiment did not list: merged on top
        if group not in comp.used_swaps:
            comp.component(group, name, "command line")
    if dotlist:
        for item in dotlist:
            key, value = item.split("=", 1)
            try:
                load_yaml_text(value, f"command line ({key})")  # bounded, one-line errors
                tree = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
            except YAMLInputError as err:
                raise ConfigError(str(err)) from None
            except yaml.YAMLError as err:
                raise ConfigError(f"command line: cannot parse '{item}': {yaml_error_line(err)}") from None
            except OmegaConfBaseException as err:
                msg = " ".join(str(err).split("\n")[0].split())
                raise ConfigError(f"command line: cannot parse '{item}': {msg}") from None
            comp.merge(tree, f"command line ({key})")
    cfg = comp.cfg
    _resolve(cfg, comp.origin)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            "required keys are not set: " + ", ".join(missing)
            + " — set them in the experiment file or on the command line (key=value)"
        )
    _check_values(cfg, RunConfig, "", comp.origin)
    from medsora.cond.attribute_spec import attribute_specs

    attribute_specs(cfg.cond)  # cond.attributes: kind, range / values, dropout (names the key)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The merged configuration as YAML (what ``--print-config`` shows)."""
    return OmegaConf.to_yaml(cfg)
