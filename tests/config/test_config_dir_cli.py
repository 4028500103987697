"""``--config-dir DIR`` on every command line that looks a config up by name (one shared option,
:func:`medsora.config.add_config_dir_argument`): a user's file in a folder outside the package is found
and its values are what the command uses; an unknown name is one line naming every folder searched.
(``fit``'s own value test is in ``test_config_search_path.py``.)"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsora.cli import run_cli
from medsora.config import PATH_ENV, config_dir


@pytest.fixture(autouse=True)
def _clean_path(monkeypatch):
    """No search path from the environment; what ``--config-dir`` puts there is undone after each test."""
    for name in (PATH_ENV, "MEDSORA_CONFIG_DIR"):
        monkeypatch.setenv(name, "")  # records the original state, restored at teardown
        monkeypatch.delenv(name)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A user's config folder: an experiment, a model, data, evaluation protocol, sweep and study files."""
    root = tmp_path / "my_configs"
    files = {
        "experiment/my_run.yaml": "defaults:\n  - experiment: diffusion_demo\n  - model: mine\nname: my_run\n",
        "model/mine.yaml": "hidden: 48\ndepth: 3\n",
        "data/mine.yaml": "num_frames: 9\nframe_stride: 2\nsize: 32\nval_fraction: 0.0\n",
        "data/tiny_demo.yaml": "root: demo\ndemo_clips: 4\nsize: 32\nnum_frames: 5\nbatch_size: 2\n",
        "eval/mine.yaml": "name: mine_tiny\nnum_videos: 4\nmetrics: [temporal_flickering]\nclip:\n  frames: 3\n"
                          "bootstrap:\n  replicates: 20\n",
        "sweep/mine.yaml": "base: my_run\nvariants:\n  narrow: [model.depth=2]\n  wide: [model.hidden=64]\n",
        "study/mine.yaml": "questions:\n  - id: origin\n    kind: choice\n    text: Real or made by the model?\n"
                           "    options: [real, generated]\n    required: true\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _frames(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_sweep_finds_the_user_sweep_and_its_user_experiment(user_dir, capsys):
    from medsora.sweep import main
    from medsora.sweeps.spec import load_sweep, validate

    assert main(["mine", "--validate-only", "--config-dir", str(user_dir)]) == 0
    assert "sweep 'mine': 2 variants valid: narrow, wide" in capsys.readouterr().out
    configs = validate(load_sweep("mine"))  # the search path --config-dir set, as the sweep's runs inherit it
    assert {n: (c.name, c.model.hidden, c.model.depth) for n, c in configs.items()} == \
        {"narrow": ("my_run", 48, 2), "wide": ("my_run", 64, 3)}


def test_data_check_uses_the_user_data_file(user_dir, tmp_path, capsys):
    from medsora.data.check import main

    data = tmp_path / "videos"
    _frames(data / "echo" / "a", 12, 0)  # 12 frames < the 17 that 9 frames at stride 2 span
    _frames(data / "echo" / "b", 20, 1)
    assert main(["check", str(data), "data=mine", "--config-dir", str(user_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "clips of 9 frames span 17 source frames" in out  # data/mine.yaml: num_frames 9, frame_stride 2
    assert "1 of 2 videos are shorter than a clip (17 frames)" in out


def test_encode_uses_the_user_data_file(user_dir, tmp_path, untrained_vae_ckpt):
    from medsora.data.cache import CacheDataset
    from medsora.encode import main

    vae = ["vae.latent_channels=4", "vae.block_out_channels=[8,8,8,8]", "vae.layers_per_block=1",
           "vae.norm_num_groups=4", "vae.freq_hidden=8", "vae.lpips='off'", "vae.scaling_factor=0.25",
           "align.teacher.weights=random",
           "align.teacher.iters=1"]
    untrained_vae_ckpt(["data.root=demo", "data.size=32", "data.num_frames=5", *vae])
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        stats = main(["data=tiny_demo", *vae, f"vae.ckpt={tmp_path / 'vae.ckpt'}", f"data.cache={cache}",
                      "--config-dir", str(user_dir), "--splits", "train", "--device", "cpu", "--no-progress"])
    clip = CacheDataset(cache, "train")[0]
    # data/tiny_demo.yaml: 4 demo clips of 5 frames at 32 px -> 2 latent frames of 4x4
    assert stats["clips"] == 4 and tuple(clip["latent_mean"].shape[-3:]) == (2, 4, 4)


@pytest.mark.parametrize("by", ["flag", "env"])
def test_evaluate_takes_the_protocol_from_the_user_folder(user_dir, tmp_path, monkeypatch, by):
    from medsora.evaluate import main

    for split in ("real", "fake"):
        for i in range(4):
            _frames(tmp_path / split / f"v{i}", 4, 10 * i + (split == "fake"))
    flag = ["--config-dir", str(user_dir)] if by == "flag" else []
    if by == "env":
        monkeypatch.setenv(PATH_ENV, str(user_dir))
    out = tmp_path / "eval.json"
    assert main(["--fake", str(tmp_path / "fake"), "--real", str(tmp_path / "real"), "--protocol", "mine",
                 "--out", str(out), "--no-progress", *flag]) == 0
    protocol = json.loads(out.read_text())["protocol"]
    assert protocol["label"] == "mine_tiny" and protocol["requested"]["clip"]["frames"] == 3


def test_reader_study_takes_the_questions_from_the_user_folder(user_dir, tmp_path):
    from medsora.data.demo.writer import write_mp4
    from medsora.reader_study.__main__ import main
    from medsora.reader_study.db import ReaderStore

    rng = np.random.default_rng(0)
    for origin in ("real", "fake"):
        (tmp_path / origin).mkdir()
        for i in range(2):
            write_mp4(tmp_path / origin / f"{origin}{i}.mp4", rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), 8)
    db = tmp_path / "study.db"
    assert main(["create", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--out", str(db),
                 "--n", "4", "--size", "32", "--frames", "4", "--questions", "mine", "--config-dir", str(user_dir),
                 "--no-progress"]) == 0
    assert [(q.id, q.text) for q in ReaderStore(db).questions] == [("origin", "Real or made by the model?")]


def _unknown(tmp_path: Path) -> dict:
    """For each command: (prog, its main, arguments naming a config that exists nowhere)."""
    from medsora.data.check import main as data_main
    from medsora.encode import main as encode_main
    from medsora.evaluate import main as evaluate_main
    from medsora.fit import main as fit_main
    from medsora.reader_study.__main__ import main as study_main
    from medsora.sweep import main as sweep_main

    (tmp_path / "fake").mkdir(exist_ok=True)
    return {
        "fit": ("medsora.fit", fit_main, ["experiment=nope"], "experiment/nope.yaml"),
        "encode": ("medsora.encode", encode_main, ["experiment=nope"], "experiment/nope.yaml"),
        "data check": ("medsora.data", data_main, ["check", str(tmp_path), "data=nope"], "data/nope.yaml"),
        "sweep": ("medsora.sweep", sweep_main, ["nope", "--validate-only"], "sweep/nope.yaml"),
        "evaluate": ("medsora.evaluate", evaluate_main, ["--fake", str(tmp_path / "fake"), "--protocol", "nope"],
                     "eval/nope.yaml"),
        "reader_study": ("medsora.reader_study", study_main,
                         ["create", "--real", str(tmp_path), "--fake", str(tmp_path), "--out", str(tmp_path / "s.db"),
                          "--questions", "nope"], "study/nope.yaml"),
    }


@pytest.mark.parametrize("command", ["fit", "encode", "data check", "sweep", "evaluate", "reader_study"])
def test_an_unknown_name_is_one_line_naming_the_search_path(command, user_dir, tmp_path, capsys):
    prog, main, argv, wanted = _unknown(tmp_path)[command]
    assert run_cli(main, prog, [*argv, "--config-dir", str(user_dir)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert wanted in lines[0] and str(user_dir.resolve()) in lines[0] and str(config_dir()) in lines[0]
    assert os.environ[PATH_ENV].split(os.pathsep)[0] == str(user_dir.resolve())
