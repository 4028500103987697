"""Manifests (CSV/JSONL), folder scans, their errors, and ``python -m medsora.data check``."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medsora.data.check import main as check_main
from medsora.data.manifest import ManifestError, load_entries, scan_folder


def _touch_videos(root, media, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        media.video(path, media.pattern(3, 16, 16))


def test_jsonl_manifest_keeps_columns_and_fills_defaults(tmp_path, media):
    _touch_videos(tmp_path, media, ["endo/a.mp4", "us/b.mp4"])
    rows = [{"path": "endo/a.mp4", "caption": "polyp in view", "modality": "endoscopy", "split": "Validation",
             "patient": "p01", "fps": 25},
            {"path": "us/b.mp4"}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    first, second = load_entries(tmp_path)  # found without data.manifest
    assert (first.caption, first.modality, first.split, first.key) == ("polyp in view", "endoscopy", "val", "endo/a.mp4")
    assert first.meta == {"patient": "p01", "fps": 25} and first.path == tmp_path / "endo" / "a.mp4"
    assert (second.modality, second.caption, second.split) == ("us", "This is a us video.", None)


def test_csv_manifest(tmp_path, media):
    _touch_videos(tmp_path, media, ["x/c.mp4"])
    (tmp_path / "list.csv").write_text("path,caption,modality,split,site\nx/c.mp4,a clip,mri,train,A\n")
    (entry,) = load_entries(tmp_path, "list.csv")
    assert (entry.modality, entry.split, entry.meta) == ("mri", "train", {"site": "A"})


@pytest.mark.parametrize("name,content,message", [
    ("m.jsonl", '{"path": "../outside.mp4"}\n', r"m.jsonl:1: path '../outside.mp4' escapes the data root"),
    ("m.jsonl", '{"path": "ok.mp4"}\n{"path": "/etc/passwd"}\n', r"m.jsonl:2: path '/etc/passwd' escapes"),
    ("m.csv", "path,caption\nsub/../../up.mp4,x\n", r"m.csv:2: path 'sub/../../up.mp4' escapes"),
    ("m.jsonl", '{"path": "a.mp4"}\n{"path": "b.mp4",}\n', r"m.jsonl:2: not valid JSON"),
    ("m.jsonl", '["a.mp4"]\n', r"m.jsonl:1: expected a JSON object"),
    ("m.jsonl", '{"caption": "no path"}\n', r"m.jsonl:1: empty 'path'"),
    ("m.csv", "file,caption\na.mp4,x\n", r"m.csv: no 'path' column \(columns: file, caption\)"),
    ("m.jsonl", '{"path": "a.mp4", "split": "holdout"}\n', r"split 'holdout' is not one of train, val, test"),
    ("m.jsonl", "\n\n", r"m.jsonl: no rows"),
    ("m.txt", "a.mp4\n", r"m.txt: manifest must be .csv or .jsonl"),
])
def test_manifest_errors_name_file_line_and_fix(tmp_path, name, content, message):
    root = tmp_path / "root"
    root.mkdir()
    (root / name).write_text(content)
    with pytest.raises(ManifestError, match=message):
        load_entries(root, name)


def test_missing_root_and_manifest(tmp_path):
    with pytest.raises(ManifestError, match="data.root: .* is not a folder"):
        load_entries(tmp_path / "nope")
    with pytest.raises(ManifestError, match="data.manifest: .*absent.jsonl not found"):
        load_entries(tmp_path, "absent.jsonl")
    with pytest.raises(ManifestError, match="no videos under"):
        load_entries(tmp_path)


def test_scan_modality_is_parent_folder_and_folders_are_videos(tmp_path, media):
    _touch_videos(tmp_path, media, ["endoscopy/a.mp4", "endoscopy/b.mp4"])
    frames = tmp_path / "microscopy" / "well_01"
    frames.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(frames / f"{k}.png")
    series = tmp_path / "mri" / "series_1"
    series.mkdir(parents=True)
    for k in range(2):
        media.dicom(series / f"s{k}.dcm", np.zeros((4, 4), np.uint8), "MONOCHROME2", 8, InstanceNumber=k,
                    SeriesInstanceUID="1.2.3")
    (tmp_path / "ultrasound").mkdir()
    media.dicom(tmp_path / "ultrasound" / "cine.dcm", np.zeros((3, 4, 4), np.uint8), "MONOCHROME2", 8)
    (tmp_path / "endoscopy" / "README.txt").write_text("ignored")
    entries = {e.key: e.modality for e in scan_folder(tmp_path)}
    assert entries == {"endoscopy/a.mp4": "endoscopy", "endoscopy/b.mp4": "endoscopy",
                       "microscopy/well_01": "microscopy", "mri/series_1": "mri", "ultrasound/cine.dcm": "ultrasound"}


def test_check_command_summarises_and_exits_on_bad_files(tmp_path, media, capsys):
    _touch_videos(tmp_path, media, ["endoscopy/a.mp4", "endoscopy/b.mp4", "mri/c.mp4"])
    assert check_main(["check", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "# 3 videos under" in out and "| mp4 | 3 |" in out and "| endoscopy | 2 | 0 |" in out
    assert "height: 16 px; width: 16 px" in out and "length: 3 frames" in out and "unreadable: 0" in out

    (tmp_path / "mri" / "broken.dcm").write_bytes(np.random.default_rng(0).bytes(512))
    (tmp_path / "mri" / "empty.mp4").write_bytes(b"")
    assert check_main(["check", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "| mri | 3 | 2 |" in out and "unreadable: 2" in out
    assert f"{tmp_path / 'mri' / 'empty.mp4'}: cannot open" in out
    assert f"{tmp_path / 'mri' / 'broken.dcm'}: not a readable DICOM file" in out

    (tmp_path / "bad.jsonl").write_text('{"path": "../x.mp4"}\n')
    assert check_main(["check", str(tmp_path / "bad.jsonl"), "--no-progress"]) == 2
    assert "escapes the data root" in capsys.readouterr().err


def test_check_runs_as_a_module_and_reads_every_frame(tmp_path, media):
    frames = tmp_path / "microscopy" / "well"
    frames.mkdir(parents=True)
    for k in range(4):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(frames / f"{k}.png")
    (frames / "2.png").write_bytes(b"\x89PNG broken")  # a corrupt frame in the middle
    run = subprocess.run([sys.executable, "-m", "medsora.data", "check", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "| frames | 1 |" in run.stdout and f"{frames}: 2.png:" in run.stdout
