"""Your own configs outside the package: a search path (``--config-dir``, ``$MEDSORA_CONFIG_PATH``) and
file paths (``experiment=path/to/run.yaml``), whose ``defaults:`` name the shipped files."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medsora.config import PATH_ENV, ConfigError, compose, config_dir, list_configs, search_path, use_config_dirs
from medsora.fit import main as fit_main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A user's folder: an experiment extending a shipped one, and a model file of their own."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "experiment" / "my_run.yaml").write_text(
        "defaults:\n  - experiment: diffusion_demo\n  - model: mine\nname: my_run\ntrainer:\n  max_steps: 3\n")
    (tmp_path / "model" / "mine.yaml").write_text("hidden: 48\ndepth: 3\n")
    return tmp_path


@pytest.fixture(autouse=True)
def _clean_path(monkeypatch):
    """No search path from the environment, and whatever a test (``--config-dir``) sets is undone after it."""
    for name in (PATH_ENV, "MEDSORA_CONFIG_DIR"):
        monkeypatch.setenv(name, "")  # records the original state, restored at teardown
        monkeypatch.delenv(name)


def test_env_path_finds_user_files_that_extend_shipped_ones(user_dir, monkeypatch):
    monkeypatch.setenv(PATH_ENV, str(user_dir))
    cfg = compose("my_run")
    shipped = compose("diffusion_demo")
    assert (cfg.name, cfg.model.hidden, cfg.model.depth, cfg.trainer.max_steps) == ("my_run", 48, 3, 3)
    assert cfg.data == shipped.data and cfg.align == shipped.align  # the rest comes from the shipped experiment
    assert search_path() == [user_dir.resolve(), config_dir()]
    assert "my_run" in list_configs("experiment") and "demo" in list_configs("experiment")


def test_user_file_shadows_the_shipped_file_of_the_same_name(user_dir, monkeypatch):
    (user_dir / "model" / "tiny.yaml").write_text("hidden: 96\n")
    monkeypatch.setenv(PATH_ENV, str(user_dir))
    assert compose("diffusion_demo").model.hidden == 96


def test_first_folder_on_the_path_wins(tmp_path, user_dir, monkeypatch):
    other = tmp_path / "other"
    (other / "model").mkdir(parents=True)
    (other / "model" / "mine.yaml").write_text("hidden: 64\n")
    monkeypatch.setenv(PATH_ENV, os.pathsep.join([str(other), str(user_dir)]))
    assert compose("my_run").model.hidden == 64


def test_experiment_given_as_a_file_with_relative_defaults(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "wide.yaml").write_text("d_state: 32\n")  # a key diffusion_demo does not set itself
    (runs / "wide.yaml").write_text("defaults:\n  - experiment: diffusion_demo\n  - model: ../models/wide.yaml\n"
                                    "name: wide\n")
    monkeypatch.chdir(tmp_path)
    cfg = compose(overrides=["experiment=runs/wide.yaml", "model.depth=2"])
    assert (cfg.name, cfg.model.d_state, cfg.model.depth, cfg.stage) == ("wide", 32, 2, "diffusion")
    assert compose(overrides=["experiment=diffusion_demo", "model=models/wide.yaml"]).model.d_state == 32


def test_missing_files_and_folders_are_named(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no config 'experiment/nope.yaml'.*--config-dir"):
        compose("nope")
    with pytest.raises(ConfigError, match="missing.yaml"):
        compose(overrides=[f"experiment={tmp_path / 'missing.yaml'}"])
    with pytest.raises(ConfigError, match="--config-dir .*absent"):
        use_config_dirs([tmp_path / "absent"])
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match=f"{PATH_ENV}.*gone"):
        compose("demo")


def test_fit_config_dir_option(user_dir, capsys):
    cfg = fit_main(["experiment=my_run", "--config-dir", str(user_dir), "--print-config"])
    assert cfg.model.hidden == 48 and "name: my_run" in capsys.readouterr().out
    assert os.environ[PATH_ENV].split(os.pathsep)[0] == str(user_dir.resolve())  # handed to the runs it starts


def _can_build_wheels() -> bool:
    """pip can build a wheel without the network: setuptools >= 70.1 has bdist_wheel, older ones need ``wheel``."""
    import setuptools

    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                    reason="needs setuptools in this environment to build the package without network")
def test_non_editable_install_ships_the_configs(tmp_path, user_dir):
    """A non-editable install of a copy of the project: the shipped configs come with the package and a
    user's experiment beside it names them. ``pip install --target`` where this environment can build a
    wheel offline, else setuptools' ``build_py`` (the step of an install that lays out packages and
    package data) into the same kind of folder."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("medsora", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    if _can_build_wheels():
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", "--target",
               str(target), str(src)]
    else:
        cmd = [sys.executable, "setup.py", "--quiet", "build_py", "--build-lib", str(target)]
    built = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(cmd)} failed:\n{built.stderr[-3000:]}"
    shutil.rmtree(src)  # nothing may come from the source tree any more
    env = {k: v for k, v in os.environ.items() if k not in (PATH_ENV, "MEDSORA_CONFIG_DIR")}
    env["PYTHONPATH"] = str(target)
    code = ("import sys, medsora, medsora.config as c; c.use_config_dirs([sys.argv[1]]); cfg = c.compose('my_run'); "
            "print(medsora.__file__); print(c.config_dir()); print(sorted(c.list_configs('experiment'))); "
            "print(cfg.name, cfg.model.hidden, cfg.stage)")
    out = subprocess.run([sys.executable, "-c", code, str(user_dir)], env=env, cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1] == str(target / "medsora" / "configs")
    assert eval(out[2]) == sorted([*list_configs("experiment"), "my_run"])  # noqa: S307 - our own printed list
    assert out[3] == "my_run 48 diffusion"
