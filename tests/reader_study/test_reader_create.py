"""Study creation: balance, seeding, uniform browser-playable clips, bad clips reported, bad options refused."""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import av
import pytest

from medsora.reader_study.__main__ import main
from medsora.reader_study.clip_sets import list_clips
from medsora.reader_study.create import create_study, describe
from medsora.reader_study.db import read_meta


def _items(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT i.id, i.token, i.modality, i.video, t.origin, t.source FROM items i "
                            "JOIN truth t ON t.item_id = i.id ORDER BY i.id").fetchall()
    finally:
        conn.close()


def test_balanced_draw_leaves_out_and_reports_bad_clips(study_factory):
    db, report = study_factory(n=8)
    items = _items(db)
    assert Counter(r["origin"] for r in items) == {"real": 4, "generated": 4}
    assert report.counts == {("all", "real"): 4, ("all", "generated"): 4}
    left = dict(report.left_out)
    assert left["real: endoscopy/real_short.mp4"] == "3 frames < --frames 8"
    assert left["generated: endoscopy/generated_corrupt.mp4"].startswith("unreadable")
    assert left["generated: ultrasound/generated_truncated.mp4"].startswith("unreadable")
    sources = {Path(r["source"]).name for r in items}
    assert not sources & {"real_short.mp4", "generated_corrupt.mp4", "generated_truncated.mp4"}
    text = describe(report, db)
    assert "3 clip(s) left out" in text and "generated_corrupt.mp4" in text


def test_per_modality_balance(study_template):
    items = _items(study_template)
    assert Counter((r["modality"], r["origin"]) for r in items) == {
        ("endoscopy", "real"): 4, ("endoscopy", "generated"): 4, ("ultrasound", "real"): 4, ("ultrasound", "generated"): 4}
    # shuffled: the origins are not in blocks (8 of each in a fixed-seed shuffle of 16)
    origins = [r["origin"] for r in items]
    assert origins != sorted(origins) and origins != sorted(origins, reverse=True)


def test_same_seed_same_study_other_seed_other_draw(study_factory):
    def draw(db):
        return [(r["source"], r["origin"]) for r in _items(db)]

    a, b, c = (draw(study_factory(n=8, seed=s)[0]) for s in (0, 0, 1))
    assert a == b
    assert a != c
    assert Counter(o for _, o in c) == {"real": 4, "generated": 4}


def test_every_clip_is_the_same_browser_playable_h264(study_template):
    meta = read_meta(sqlite3.connect(study_template))
    assert (meta["size"], meta["frames"], meta["fps"]) == (32, 8, 8)
    for row in _items(study_template):
        blob = row["video"]
        with av.open(io.BytesIO(blob)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert (stream.codec_context.width, stream.codec_context.height) == (32, 32)
            assert stream.average_rate == 8
            assert sum(1 for _ in container.decode(stream)) == 8
        assert blob.index(b"moov") < blob.index(b"mdat"), "faststart: the index precedes the data"
        assert b"Lavf" not in blob, "bitexact: no muxer version string"
        assert Path(row["source"]).stem.encode() not in blob


def test_tokens_are_opaque(study_template):
    items = _items(study_template)
    tokens = [r["token"] for r in items]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) >= 20 for t in tokens)
    for row in items:
        for word in (Path(row["source"]).stem, row["origin"], row["modality"]):
            assert word.lower() not in row["token"].lower()


def test_bad_options_are_refused_naming_them(spec_maker, tmp_path, study_template):
    with pytest.raises(ValueError, match="--n 7: an even number"):
        create_study(spec_maker(tmp_path / "a.db", n=7), progress=False)
    with pytest.raises(ValueError, match="--size 33"):
        create_study(spec_maker(tmp_path / "a.db", size=33), progress=False)
    with pytest.raises(ValueError, match=r"--n 20 needs 10 readable clips per origin, but there are only all/generated: 8, all/real: 8; lower --n"):
        create_study(spec_maker(tmp_path / "a.db", n=20), progress=False)
    with pytest.raises(ValueError, match="multiple of 4"):
        create_study(spec_maker(tmp_path / "a.db", n=10, per_modality=True), progress=False)
    spec = spec_maker(tmp_path / "a.db")
    with pytest.raises(ValueError, match="--real and --fake share 9 clip"):
        create_study(dataclasses.replace(spec, fake=spec.real), progress=False)
    with pytest.raises(ValueError, match="already exists"):
        create_study(spec_maker(study_template), progress=False)
    assert not (tmp_path / "a.db").exists()


def test_cli_error_is_one_line(clip_sets, tmp_path, capsys):
    real, fake = clip_sets
    code = main(["create", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "s.db"), "--n", "7"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("medsora.reader_study: error: --n 7") and "\n" not in err
    bad = tmp_path / "q.yaml"
    bad.write_text("questions:\n  - {id: origin, kind: choice, text: x, options: [yes, no]}\n")
    code = main(["create", "--real", str(real), "--fake", str(fake), "--out", str(tmp_path / "s.db"),
                 "--questions", str(bad)])
    assert code == 2 and f"{bad}: questions[0].options" in capsys.readouterr().err


def test_modality_from_samples_json_and_manifest(clip_sets, tmp_path):
    real, fake = clip_sets
    samples = tmp_path / "samples"
    samples.mkdir()
    for i, name in enumerate(("generated_endoscopy_0", "generated_ultrasound_1")):
        shutil.copy(fake / name.split("_")[1] / f"{name}.mp4", samples / f"sample_{i:03d}.mp4")
    (samples / "samples.json").write_text(json.dumps({"files": ["sample_000", "sample_001"],
                                                      "labels": ["endoscopy", "ultrasound"]}))
    assert [(c.key, c.modality) for c in list_clips(samples, "generated")] == [
        ("sample_000.mp4", "endoscopy"), ("sample_001.mp4", "ultrasound")]
    (real / "manifest.jsonl").write_text(json.dumps({"path": "endoscopy/real_endoscopy_0.mp4", "modality": "colon"}))
    try:
        clips = {c.key: c.modality for c in list_clips(real, "real")}
    finally:
        (real / "manifest.jsonl").unlink()
    assert clips["endoscopy/real_endoscopy_0.mp4"] == "colon" and clips["ultrasound/real_ultrasound_0.mp4"] == "ultrasound"
