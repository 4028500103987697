"""Downstream utility on the demo set: a classifier of the modality trained on real clips scores high on the real
held-out clips; trained on label-shuffled clips it is at chance; generated clips are read with samples.json labels."""
from __future__ import annotations

import json
import shutil

import pytest

from medsora.evaluation.utility.clips import ClipSpec
from medsora.evaluation.utility.run import UtilitySettings, utility_report


@pytest.fixture(scope="module")
def demo_root():
    from medsora.data.demo import ensure_demo

    return ensure_demo()


@pytest.mark.slow
def test_real_vs_real_is_high_and_shuffled_labels_are_at_chance(demo_root, tmp_path):
    # "generated" set: real held-out-free training videos copied with a samples.json, as medsora.sample writes
    fake = tmp_path / "samples"
    fake.mkdir()
    rows = [json.loads(line) for line in (demo_root / "manifest.jsonl").read_text().splitlines()]
    chosen = [r for r in rows if r["split"] == "train"][:12]
    for i, r in enumerate(chosen):
        shutil.copy(demo_root / r["path"], fake / f"sample_{i:03d}.mp4")
    (fake / "samples.json").write_text(json.dumps({"files": [f"sample_{i:03d}" for i in range(len(chosen))],
                                                   "labels": [r["modality"] for r in chosen]}))
    settings = UtilitySettings(steps=120, seed=0, clip=ClipSpec(frames=4, size=16, span=17, windows_per_video=2))
    report = utility_report(fake, demo_root, "modality", settings, progress=False, controls=True)
    scores = {k: v["score"] for k, v in report["scores"].items()}
    assert report["task"] == "classification" and report["test_videos"] == 8
    assert scores["real"] >= 0.9
    assert scores["real_shuffled_labels"] <= report["chance"] + 0.2
    assert report["scores"]["generated"]["train_videos"] == 12


def test_samples_without_labels_are_refused(tmp_path, demo_root):
    from medsora.evaluate import main

    (tmp_path / "s").mkdir()
    rows = [json.loads(line) for line in (demo_root / "manifest.jsonl").read_text().splitlines()]
    shutil.copy(demo_root / rows[0]["path"], tmp_path / "s" / "sample_000.mp4")
    assert main(["--utility", "modality", "--fake", str(tmp_path / "s"), "--real", str(demo_root),
                 "--no-progress"]) == 2
