"""The conditioning image of image-to-video: read and preprocessed exactly as training clips are.

A PNG/JPEG (or any single image), one frame of a DICOM (``frame`` for multi-frame cine), or the first
frame of a video file (or frame folder / NIfTI) goes through the same reader (:func:`medsora.data.sources.read_video`:
DICOM rescale and window, robust percentiles over the whole file as for a clip) and the same spatial
preprocessing as the validation clips (short side to ``data.size``, centre crop, grey -> 3 channels,
[-1, 1]); the causal VAE then encodes it alone into latent frame 0.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

__all__ = ["load_first_frame", "encode_first_frame"]


def load_first_frame(path: str | Path, data_cfg, frame: int = 0) -> Tensor:
    """One frame of ``path`` as the training data would show it.

    Args:
        path: an image, DICOM, video, frame folder or NIfTI file.
        data_cfg: the run's ``data:`` section (``size``, ``intensity_percentiles``, ``nifti_axis``, ``nifti_slice``).
        frame: which frame (``--image-frame``; 0 for images and the first frame of a video).
    Returns:
        3×H×W float32 in [-1, 1], H = W = ``data.size``.
    Raises:
        FileNotFoundError: no such file; ValueError: a frame index the source does not have or an
            unreadable file (naming the path and the reason).
    """
    from medsora.data.sources import UnreadableVideo, read_video
    from medsora.data.transforms import preprocess_frames

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--image {path}: no such file")
    if frame < 0:
        raise ValueError(f"--image-frame {frame}: must be >= 0")
    percentiles = tuple(float(p) for p in data_cfg.intensity_percentiles)
    try:
        frames, meta = read_video(path, indices=[int(frame)], axis=int(data_cfg.nifti_axis),
                                  slice_index=data_cfg.nifti_slice, percentiles=percentiles)
    except UnreadableVideo as err:
        raise ValueError(f"--image {path} (frame {frame}): {err.reason}"
                         + ("; pass --image-frame K within the file's frames" if "requested" in err.reason else "")) from None
    return preprocess_frames(frames, int(data_cfg.size))[:, 0]


@torch.no_grad()
def encode_first_frame(vae, images: Tensor, scaling_factor: float) -> Tensor:
    """Scaled latents of single frames: B×3×H×W in [-1, 1] -> B×C×1×h×w (the posterior mean).

    The causal VAE encodes a one-frame clip into exactly the latent frame 0 it gives the frame at the
    start of a clip, so this is the context a training clip's first latent frame provides.
    """
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"first-frame images must be B×3×H×W in [-1, 1], got {tuple(images.shape)}")
    return vae.encode(images[:, :, None]).mean.float() * scaling_factor
