"""``python -m medsora.reconstruct``: side-by-side clips and per-clip PSNR/SSIM of a trained VAE."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from medsora.data.video_io import write_mp4
from medsora.metrics.reconstruction import PSNR, SSIM
from medsora.reconstruct import main, reconstruct
from medsora.vae import load_vae


def _video(path, seed: int, frames: int = 9, size: int = 48):
    g = np.random.default_rng(seed)
    base = g.integers(0, 255, (size, size, 3), dtype=np.uint8)
    clip = np.stack([np.roll(base, 2 * t, axis=1) for t in range(frames)])  # a panning texture
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_mp4(clip, path, fps=10)


def test_reconstruct_writes_side_by_side_clips_and_scores_that_match_the_vae(tiny_vae_ckpt, tmp_path):
    data = tmp_path / "data"
    _video(data / "echo" / "a.mp4", 0)
    _video(data / "echo" / "b.mp4", 1)
    (data / "echo" / "broken.mp4").write_bytes(b"not a video")
    record = reconstruct(tiny_vae_ckpt, data, tmp_path / "out", size=32, num_frames=5, progress=False)
    assert [r["path"] for r in record["clips"]] == ["echo/a.mp4", "echo/b.mp4"]
    assert [s["path"] for s in record["skipped"]] == ["echo/broken.mp4"]
    with av.open(str(tmp_path / "out" / "echo_a.mp4")) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (32, 64, 3)  # input | reconstruction
    saved = json.loads((tmp_path / "out" / "reconstruct.json").read_text())
    assert saved["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in saved["clips"]]), abs=1e-3)
    assert "| **mean of 2** |" in (tmp_path / "out" / "reconstruct.md").read_text()

    # the same numbers from the VAE directly, on the clip the data pipeline makes
    from medsora.data.dataset import ClipSettings, VideoClipDataset
    from medsora.data.manifest import load_entries
    from medsora.data.table import SourceTable

    entries = load_entries(data)
    table = SourceTable(entries, 1.0)
    clip = VideoClipDataset(table, [0], ClipSettings(size=32, num_frames=5), train=False)[0]["video"][None]
    vae, _ = load_vae(tiny_vae_ckpt)
    with torch.no_grad():
        recon = vae.decode(vae.encode(clip).mode()).clamp(-1, 1)
    real, fake = (clip[0].transpose(0, 1) + 1) / 2, (recon[0].transpose(0, 1) + 1) / 2
    assert record["clips"][0]["psnr"] == pytest.approx(float(PSNR().frame_scores(real, fake).mean()), abs=1e-3)
    assert record["clips"][0]["ssim"] == pytest.approx(float(SSIM().frame_scores(real, fake).mean()), abs=1e-4)


def test_one_file_input_and_bad_values(tiny_vae_ckpt, tmp_path):
    one = _video(tmp_path / "one.mp4", 2)
    assert main(["--vae", str(tiny_vae_ckpt), "--input", str(one), "--out", str(tmp_path / "o"), "--size", "32",
                 "--num-frames", "5", "--no-progress"]) == 0
    assert (tmp_path / "o" / "one.mp4").is_file()
    with pytest.raises(ValueError, match="--num-frames = 4: must be 1 \\+ 4k"):
        main(["--vae", str(tiny_vae_ckpt), "--input", str(one), "--out", str(tmp_path / "p"), "--num-frames", "4"])
    with pytest.raises(FileNotFoundError, match="--input .*nope: no such file or folder"):
        main(["--vae", str(tiny_vae_ckpt), "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "p")])


def test_packaged_clinical_files_keep_their_names_and_frame_rates(tiny_vae_ckpt, tmp_path):
    """pydicom's 30 fps echo cine plays at 30 fps; nibabel's 4-D fMRI (a volume every 2000 s by its header)
    at 8 fps; ``x.nii.gz`` becomes ``x.mp4``, not ``x.nii.mp4``."""
    import shutil

    from nibabel.testing import data_path
    from pydicom.data import get_testdata_file

    data = tmp_path / "data"
    for name, source in (("ultrasound/echo.dcm", get_testdata_file("examples_ybr_color.dcm", download=False)),
                         ("mri/fmri.nii.gz", f"{data_path}/example4d.nii.gz")):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, data / name)
    record = reconstruct(tiny_vae_ckpt, data, tmp_path / "out", size=32, num_frames=5, frame_stride=1, progress=False)
    assert {r["file"]: r["fps"] for r in record["clips"]} == {"mri_fmri.mp4": 8.0, "ultrasound_echo.mp4": 30.0}
    for name, rate in (("mri_fmri.mp4", 8), ("ultrasound_echo.mp4", 30)):
        with av.open(str(tmp_path / "out" / name)) as f:
            assert round(float(f.streams.video[0].average_rate)) == rate
    assert record["settings"]["fps"] == "source"
