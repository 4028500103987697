"""Writing generated videos: mp4 (PyAV), gif (Pillow), a contact sheet, and TensorBoard clips.

TensorBoard's ``add_video`` needs moviepy to encode; an animated GIF in an image summary is
what it produces, so :func:`tensorboard_video` builds that summary directly with Pillow.
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["to_uint8", "write_mp4", "write_gif", "contact_sheet", "tensorboard_video", "write_videos"]


def to_uint8(videos: torch.Tensor) -> np.ndarray:
    """``B×C×F×H×W`` floats in [-1, 1] (C = 1 or 3) -> ``B×F×H×W×3`` uint8."""
    if videos.ndim != 5 or videos.shape[1] not in (1, 3):
        raise ValueError(f"expected videos B×C×F×H×W with C = 1 or 3, got {tuple(videos.shape)}")
    v = videos.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    if v.shape[1] == 1:
        v = v.expand(-1, 3, -1, -1, -1)
    return v.permute(0, 2, 3, 4, 1).contiguous().numpy()


def _rate(fps: float) -> Fraction:
    """A frame rate as the exact fraction containers store (29.97 -> 30000/1001)."""
    if not fps or not float(fps) > 0:
        raise ValueError(f"frame rate must be > 0, got {fps!r}")
    return Fraction(float(fps)).limit_denominator(1001)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 8) -> Path:
    """Encode ``F×H×W×3`` uint8 frames as H.264 (yuv420p; odd sizes are padded by one pixel) at ``fps``.

    Lossy: the same frames can, rarely, give files that differ by a few bytes (seen in long test
    processes); the GIF written beside each mp4 is the bit-exact record.
    """
    path = Path(path)
    f, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2  # yuv420p needs even sides
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height = w + pad_w, h + pad_h
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    images = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)),
                   loop=0)
    return buf.getvalue()


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 8) -> Path:
    """Write ``F×H×W×3`` uint8 frames as a looping GIF."""
    path = Path(path)
    path.write_bytes(_gif_bytes(frames, fps))
    return path


def contact_sheet(videos: np.ndarray, path: str | Path, labels: Sequence[str] | None = None,
                  max_frames: int = 9, scale: int = 1) -> Path:
    """One PNG with a row per video and up to ``max_frames`` evenly spaced frames per row.

    Args:
        videos: ``B×F×H×W×3`` uint8.
        labels: optional text drawn at the start of each row (e.g. the modality).
        scale: integer upscaling (nearest) so small demo frames are visible.
    """
    b, f, h, w, _ = videos.shape
    idx = np.unique(np.linspace(0, f - 1, min(max_frames, f)).round().astype(int))
    gap = 2
    sheet = np.full((b * (h + gap) + gap, len(idx) * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for i in range(b):
        for j, k in enumerate(idx):
            y, x = gap + i * (h + gap), gap + j * (w + gap)
            sheet[y:y + h, x:x + w] = videos[i, k]
    image = Image.fromarray(sheet)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if labels:
        draw = ImageDraw.Draw(image)
        for i, label in enumerate(labels):
            draw.text((gap * scale + 2, (gap + i * (h + gap)) * scale + 1), str(label), fill=(255, 255, 0))
    path = Path(path)
    image.save(path)
    return path


def write_videos(videos: torch.Tensor, out_dir: str | Path, prefix: str = "sample", fps: float = 8,
                 labels: Sequence[str] | None = None, start: int = 0) -> dict[str, list[Path] | Path]:
    """Write each video as ``{prefix}_{i:03d}.mp4`` and ``.gif`` plus ``contact_sheet.png``.

    Args:
        videos: ``B×C×F×H×W`` in [-1, 1].
        start: number of the first video (for batched writing).
    Returns:
        ``{"mp4": [...], "gif": [...], "sheet": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = to_uint8(videos)
    mp4s, gifs = [], []
    for i, clip in enumerate(frames):
        name = f"{prefix}_{start + i:03d}"
        mp4s.append(write_mp4(clip, out / f"{name}.mp4", fps))
        gifs.append(write_gif(clip, out / f"{name}.gif", fps))
    scale = max(1, 96 // frames.shape[2])
    sheet = contact_sheet(frames, out / "contact_sheet.png", labels=labels, scale=scale)
    return {"mp4": mp4s, "gif": gifs, "sheet": sheet}


def tensorboard_video(writer, tag: str, video: torch.Tensor, step: int, fps: float = 8) -> None:
    """Add one ``C×F×H×W`` video in [-1, 1] to a ``SummaryWriter`` as an animated GIF image."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = to_uint8(video[None])[0]
    _, h, w, _ = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=_gif_bytes(frames, fps))
    # private torch API (no public call writes a raw Summary); checked by tests/data/test_data_tensorboard_video.py
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
