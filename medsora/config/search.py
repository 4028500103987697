"""The config search path: where config files are found by name, and the ``--config-dir`` option.

Folders of ``--config-dir DIR`` (repeatable) and of ``$MEDSORA_CONFIG_PATH`` (``os.pathsep``-separated), in that
order, then the shipped ``configs/``; the first folder holding ``<group>/<name>.yaml`` wins. Every command line
that looks a config up by name (``fit``, ``encode``, ``data check``, ``sweep``, ``evaluate --protocol``,
``reader_study create --questions``) adds the option with :func:`add_config_dir_argument` and applies it with
:func:`use_config_dirs`. A leaf module (no schema, no torch), so light command lines can use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from medsora.config.errors import ConfigError

__all__ = ["PATH_ENV", "config_dir", "search_path", "use_config_dirs", "add_config_dir_argument", "list_configs",
           "find_config", "group_file", "is_file_name"]

PATH_ENV = "MEDSORA_CONFIG_PATH"
"""Environment variable: user config folders searched before the shipped ones (``os.pathsep``-separated)."""


def config_dir() -> Path:
    """The shipped configs folder: ``$MEDSORA_CONFIG_DIR`` if set, else ``medsora/configs`` of an
    installed package (package data), else ``configs/`` of the source checkout."""
    env = os.environ.get("MEDSORA_CONFIG_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[1]
    installed = here / "configs"
    return installed if installed.is_dir() else here.parent / "configs"


def search_path(root: Path | None = None) -> list[Path]:
    """The folders config names are looked up in, first match wins: ``$MEDSORA_CONFIG_PATH``'s
    (which ``--config-dir`` extends), then :func:`config_dir`. ``root`` replaces the whole path.

    Raises:
        ConfigError: a folder on the path does not exist (naming it and where it was set).
    """
    if root is not None:
        return [Path(root)]
    dirs = []
    for entry in os.environ.get(PATH_ENV, "").split(os.pathsep):
        if not entry:
            continue
        folder = Path(entry).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{PATH_ENV} (or --config-dir): '{entry}' is not a folder; give folders holding "
                              "<group>/<name>.yaml files, e.g. my_configs/experiment/my_run.yaml")
        dirs.append(folder.resolve())
    return [*dirs, config_dir()]


def use_config_dirs(dirs: Sequence[str | os.PathLike]) -> None:
    """Put ``dirs`` (``--config-dir``, in order) first on the search path of this process and of the
    processes it starts (sweep runs, DDP ranks), through ``$MEDSORA_CONFIG_PATH``.

    Raises:
        ConfigError: a folder does not exist.
    """
    resolved = []
    for d in dirs:
        folder = Path(d).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--config-dir {d}: no such folder (it should hold <group>/<name>.yaml files, "
                              f"e.g. {d}/experiment/my_run.yaml)")
        resolved.append(str(folder.resolve()))
    current = [e for e in os.environ.get(PATH_ENV, "").split(os.pathsep) if e]
    merged = list(dict.fromkeys([*resolved, *current]))
    if merged:
        os.environ[PATH_ENV] = os.pathsep.join(merged)


def add_config_dir_argument(parser) -> None:
    """Add the repeatable ``--config-dir DIR`` option to an ``argparse`` parser (apply it with :func:`use_config_dirs`)."""
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                        help=f"a folder of your own configs (<group>/<name>.yaml), searched before the shipped ones; "
                             f"repeatable, first wins; also ${PATH_ENV}")


def list_configs(group: str, root: Path | None = None) -> list[str]:
    """Names of the YAML files available for a group (e.g. ``experiment``) along the search path."""
    names = set()
    for folder in search_path(root):
        names.update(p.stem for p in (folder / group).glob("*.yaml"))
    return sorted(names)


def is_file_name(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def group_file(path: list[Path], group: str, name: str, origin: str, base: Path | None = None,
                file_hint: str | None = None) -> Path:
    """The file ``name`` of ``group``: a ``.yaml`` path (relative to ``base``, default the current
    folder), or the first ``<dir>/<group>/<name>.yaml`` along ``path``. ``file_hint`` is how the
    message tells the user to give a file instead (default ``group=path/to/file.yaml``)."""
    if is_file_name(name):
        file = Path(name).expanduser()
        if not file.is_absolute() and base is not None:
            file = base / file
        if not file.is_file():
            raise ConfigError(f"{origin}: {group} file '{name}' not found (looked at {file.resolve()})")
        return file
    for folder in path:
        file = folder / group / f"{name}.yaml"
        if file.is_file():
            return file
    choices = sorted({p.stem for folder in path for p in (folder / group).glob("*.yaml")})
    where = ", ".join(str(folder) for folder in path)
    raise ConfigError(f"{origin}: no config '{group}/{name}.yaml' in {where} (available: {', '.join(choices) or 'none'}; "
                      f"add folders with --config-dir DIR or ${PATH_ENV}, or give a file: "
                      f"{file_hint or f'{group}=path/to/file.yaml'})")


def find_config(group: str, name: str, origin: str = "command line", root: Path | None = None,
                file_hint: str | None = None) -> Path:
    """The file of ``name`` in ``group`` (``eval``, ``sweep``, ``study``, ...) along :func:`search_path`, or
    ``name`` itself when it is a ``.yaml`` path; the one lookup every command line uses for a named file.

    Raises:
        ConfigError: no such file, naming every folder searched and the names available.
    """
    return group_file(search_path(root), group, name, origin, file_hint=file_hint)
