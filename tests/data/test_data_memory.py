"""Memory bounded by the output: large frames are scaled as they are decoded, oversized ones refused."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from medsora.data.sources import read_video
from medsora.data.sources.downscale import FrameTooLarge

SIDE, FRAMES = 3000, 17  # 17 full-size RGB frames: 459 MB; one 32 px clip: 0.2 MB


def _frame(t: int) -> np.ndarray:
    ramp = ((np.arange(SIDE, dtype=np.uint16) * 255 // SIDE + 7 * t) % 256).astype(np.uint8)
    return np.ascontiguousarray(np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, ::-1]), -1))


@pytest.fixture(scope="module")
def large_sources(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("large")
    (root / "endoscopy").mkdir()
    with av.open(str(root / "endoscopy" / "big.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for t in range(FRAMES):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(t), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = root / "microscopy" / "well"
    frames.mkdir(parents=True)
    for t in range(FRAMES):
        Image.fromarray(_frame(t)).save(frames / f"{t:02d}.png", compress_level=0)
    return root


_CHILD = textwrap.dedent("""
    import resource, subprocess, sys, json
    code = '''
    import sys
    from omegaconf import OmegaConf
    from medsora.data.datamodule import VideoDataModule
    from medsora.data.schema import DataConfig
    cfg = OmegaConf.structured(DataConfig(root=sys.argv[1], size=32, num_frames=17, val_fraction=0.0,
                                          batch_size=1, num_workers=0))
    dm = VideoDataModule(cfg, seed=0)
    dm.setup("fit")
    if sys.argv[2] != "setup":
        item = dm.train_set[int(sys.argv[2])]  # one clip per video: item i is video i
        assert tuple(item["video"].shape) == (3, 17, 32, 32), item["video"].shape
    '''
    subprocess.run([sys.executable, "-c", code, sys.argv[1], sys.argv[2]], check=True)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)  # the child's peak, MiB
""")


def _peak_mib(root: Path, mode: str) -> float:
    """Peak RSS of a child that sets the data module up (``setup``) or also reads clip ``mode``.

    A fresh parent per child: its RUSAGE_CHILDREN peak is that child's alone.
    """
    run = subprocess.run([sys.executable, "-c", _CHILD, str(root), mode], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return float(run.stdout.strip().splitlines()[-1])


def test_a_clip_of_a_large_video_or_frame_folder_needs_memory_of_the_clip_not_the_source(large_sources):
    baseline = _peak_mib(large_sources, "setup")  # imports and header probes
    video, frames = _peak_mib(large_sources, "0"), _peak_mib(large_sources, "1")
    # Stacking full-size frames adds >= 459 MB (17 × 3000² × 3 bytes; measured +860 MiB before).
    assert video - baseline < 150 and frames - baseline < 150, (baseline, video, frames)


def test_frames_over_the_pixel_limit_are_refused_naming_the_file_and_the_key(large_sources):
    video = large_sources / "endoscopy" / "big.mp4"
    with pytest.raises(FrameTooLarge) as err:
        read_video(video, indices=[0], max_pixels=SIDE * SIDE - 1)
    assert err.value.path == video and "data.max_frame_pixels" in str(err.value) and "3000×3000" in str(err.value)
    with pytest.raises(FrameTooLarge, match="data.max_frame_pixels"):
        read_video(large_sources / "microscopy" / "well", indices=[0], max_pixels=1000)
    small, meta = read_video(video, indices=[0, 16], short_side=32)
    assert small.shape == (2, 32, 32, 3) and (meta["height"], meta["width"]) == (SIDE, SIDE)
