"""Bad values, unsafe YAML and unresolvable interpolations fail at start-up in one line naming the key and source."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsora.cli import run_cli
from medsora.config import ConfigError, compose
from medsora.config.yaml_io import MAX_NODES, YAMLInputError, load_yaml_text

REPO = Path(__file__).resolve().parents[2]

BAD_VALUES = [
    ("data.size=-5", "'data.size' = -5 must be >= 8"),
    ("data.size=100000000000000000000", "'data.size' = 100000000000000000000 must be <= 8192"),
    ("data.num_frames=4", "'data.num_frames' = 4 must be 1 \\+ 4k"),
    ("model.blocks=[]", "'model.blocks' = \\[\\] is empty"),
    ("data.batch_size=0", "'data.batch_size' = 0 must be >= 1"),
    ("data.frame_stride=0", "'data.frame_stride' = 0 must be >= 1"),
    ("data.frame_stride=-1", "'data.frame_stride' = -1 must be >= 1"),
    ("trainer.checkpoint_every_n_steps=0", "'trainer.checkpoint_every_n_steps' = 0 must be >= 1"),
    ("model.heads=3", "'model.heads' = 3 must divide model.hidden = 64"),
    ("model.hidden=30", "'model.hidden' = 30 must be a multiple of 4"),
    ("align.tap=cross_attn", "'align.tap' = 'cross_attn' is not in model.blocks"),
    ("train.lr=nan", "'train.lr' = nan must be a finite number"),
    ("vae.ckpt=/no/such/vae.ckpt", "'vae.ckpt' = '/no/such/vae.ckpt' no such file or folder"),
    ("train.init_from=/no/such.ckpt", "'train.init_from' = '/no/such.ckpt' no such file"),
    ("cond.text_encoder=/no/t5", "'cond.text_encoder' = '/no/t5' no such folder"),
    ("align.teacher.weights=/no/raft.pth", "'align.teacher.weights' = '/no/raft.pth' no such file"),
    ("trainer.devices=two", "'trainer.devices' = 'two' must be auto, a count"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES)
def test_a_bad_value_names_its_key_and_where_it_came_from(override, message):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"^command line \\({key}\\): {message}"):
        compose(overrides=["data.root=demo", override])


def test_a_bad_value_from_a_file_names_the_file(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "x.yaml").write_text("data:\n  root: demo\n  num_frames: 16\n")
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'experiment' / 'x.yaml'}: 'data.num_frames' = 16 must be"):
        compose("x", root=tmp_path)


def test_env_interpolations_are_resolved_and_type_checked_at_start_up(monkeypatch):
    monkeypatch.setenv("MEDSORA_TEST_SIZE", "48")
    assert compose(overrides=["data.root=demo", "data.size=${oc.env:MEDSORA_TEST_SIZE}"]).data.size == 48
    monkeypatch.setenv("MEDSORA_TEST_SIZE", "big")
    with pytest.raises(ConfigError, match="command line \\(data.size\\): 'data.size' cannot be resolved: .*'big'.*"
                                          "Integer"):
        compose(overrides=["data.root=demo", "data.size=${oc.env:MEDSORA_TEST_SIZE}"])
    monkeypatch.delenv("MEDSORA_TEST_SIZE")
    with pytest.raises(ConfigError, match="'data.size' cannot be resolved: .*MEDSORA_TEST_SIZE' not found"):
        compose(overrides=["data.root=demo", "data.size=${oc.env:MEDSORA_TEST_SIZE}"])
    monkeypatch.setenv("MEDSORA_TEST_SIZE", "-8")
    with pytest.raises(ConfigError, match="'data.size' = -8 must be >= 8"):  # resolved values are range-checked too
        compose(overrides=["data.root=demo", "data.size=${oc.env:MEDSORA_TEST_SIZE}"])


BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"]
                 + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"


def test_an_alias_bomb_is_refused_fast_and_a_python_tag_in_one_line(tmp_path):
    assert len(BOMB) < 500
    began = time.perf_counter()
    with pytest.raises(YAMLInputError, match=f"expand to more than {MAX_NODES} items"):
        load_yaml_text(BOMB, "bomb.yaml")
    assert time.perf_counter() - began < 2
    assert load_yaml_text("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}  # ordinary aliases work

    root = tmp_path / "configs"
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "bomb.yaml").write_text(BOMB)
    (root / "experiment" / "tag.yaml").write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    env = {**os.environ, "MEDSORA_CONFIG_DIR": str(root), "PYTHONPATH": str(REPO)}
    for name, message in (("bomb", "aliases (*name) expand to more than"), ("tag", "line 1, column 7: could not "
                                                                              "determine a constructor for the tag")):
        done = subprocess.run([sys.executable, "-m", "medsora.fit", f"experiment={name}", "--print-config"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"medsora.fit: error: {root / 'experiment' / name}.yaml: " in done.stderr and message in done.stderr


@pytest.mark.parametrize("override", ["data.size=[1,", "model.blocks=[local_attn", "name={a: b"])
def test_yaml_errors_in_overrides_are_one_line_config_errors(override):
    with pytest.raises(ConfigError) as err:
        compose(overrides=["data.root=demo", override])
    assert "\n" not in str(err.value) and "line 1, column" in str(err.value) and override.split("=")[0] in str(err.value)


def test_run_cli_turns_user_errors_into_one_line_and_keeps_bugs_tracebacks(capsys, monkeypatch):
    def bad_config(argv):
        raise ConfigError("command line (data.size): 'data.size' = -5 must be >= 8\nsecond line")

    assert run_cli(bad_config, "medsora.x", []) == 2
    assert capsys.readouterr().err == ("medsora.x: error: command line (data.size): 'data.size' = -5 must be >= 8 "
                                       "second line (--debug shows the traceback)\n")
    with pytest.raises(ConfigError):
        run_cli(bad_config, "medsora.x", ["--debug"])
    monkeypatch.setenv("MEDSORA_DEBUG", "1")
    with pytest.raises(ConfigError):
        run_cli(bad_config, "medsora.x", [])
    monkeypatch.delenv("MEDSORA_DEBUG")

    def bug(argv):
        raise KeyError("a bug, not the user's input")

    with pytest.raises(KeyError):
        run_cli(bug, "medsora.x", [])
    seen = []
    assert run_cli(lambda argv: seen.append(argv) or 0, "medsora.x", ["a=1", "--debug", "b=2"]) == 0
    assert seen == [["a=1", "b=2"]]  # --debug is taken out before main parses
