"""Animated GIFs in TensorBoard through ``SummaryWriter._get_file_writer()`` (a private torch API: no public
call writes a raw ``Summary`` and ``add_video`` needs moviepy), read back with TensorBoard's public reader."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from medsora.data.video_io import tensorboard_video
from medsora.vae.video_log import log_reconstructions


def _frames(gif: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(gif))
    assert image.format == "GIF"
    out = []
    for i in range(image.n_frames):
        image.seek(i)
        out.append(np.asarray(image.convert("RGB")))
    return out


def test_videos_reach_tensorboard_as_animated_images(tmp_path):
    gen = torch.Generator().manual_seed(0)
    video = torch.rand(3, 5, 16, 24, generator=gen) * 2 - 1  # C×F×H×W
    recon = torch.rand(2, 3, 5, 16, 24, generator=gen) * 2 - 1
    writer = SummaryWriter(str(tmp_path))
    tensorboard_video(writer, "samples/00", video, step=7)
    log_reconstructions(writer, "val/reconstruction", recon, recon.flip(0), step=9)
    writer.close()

    events = EventAccumulator(str(tmp_path), size_guidance={IMAGES: 0})
    events.Reload()
    assert set(events.Tags()[IMAGES]) == {"samples/00", "val/reconstruction"}
    sample, = events.Images("samples/00")
    assert (sample.step, sample.width, sample.height) == (7, 24, 16)
    frames = _frames(sample.encoded_image_string)
    assert len(frames) == 5
    expected = ((video[:, 2].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(frames[2].astype(float) - expected).mean() < 8  # GIF palette quantisation only
    recon_image, = events.Images("val/reconstruction")
    # one row per clip, input | reconstruction side by side
    assert (recon_image.step, recon_image.width, recon_image.height) == (9, 48, 32)
    assert len(_frames(recon_image.encoded_image_string)) == 5
