"""Reconstructions next to their inputs as animated images in TensorBoard, without moviepy.

``SummaryWriter.add_video`` encodes through moviepy, which is not a dependency of
this project. TensorBoard's image dashboard plays animated GIFs, so we encode the
GIF with Pillow and write the same ``Summary.Image`` record ``add_video`` writes.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary


def side_by_side(inputs: torch.Tensor, recons: torch.Tensor) -> np.ndarray:
    """``inputs, recons: B×3×F×H×W`` in ``[-1, 1]`` -> ``F×(B·H)×(2W)×3`` uint8 frames:
    one row per clip, input on the left, reconstruction on the right."""
    pair = torch.cat([inputs, recons], dim=-1)  # B×3×F×H×2W
    frames = pair.permute(2, 0, 3, 4, 1).flatten(1, 2)  # F×(B·H)×2W×3
    return ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def gif_bytes(frames: np.ndarray, fps: int = 8) -> bytes:
    """``frames: F×H×W×3`` uint8 -> an endlessly looping GIF."""
    images = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0)
    return buf.getvalue()


def log_reconstructions(writer, tag: str, inputs: torch.Tensor, recons: torch.Tensor, step: int, fps: int = 8) -> None:
    """Write ``inputs | recons`` as one animated image to a ``torch.utils.tensorboard.SummaryWriter``."""
    frames = side_by_side(inputs, recons)
    image = Summary.Image(
        height=frames.shape[1], width=frames.shape[2], colorspace=3, encoded_image_string=gif_bytes(frames, fps)
    )
    # private torch API (no public call writes a raw Summary); checked by tests/data/test_data_tensorboard_video.py
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
