"""The real images and volumes the demo set is built from, all shipped inside installed packages.

* endoscopy: scikit-image's fundus photograph (``skimage.data.retina``) as a
  tissue texture with branching vessels;
* microscopy: scikit-image's ``cell`` image (phase contrast): its empty part as
  the culture background, its cell as the sprite that moves and divides;
* ultrasound: pydicom's ``examples_ybr_color.dcm``, a 30-frame cardiac cine loop
  in a sector view;
* MRI: nibabel's ``example4d.nii.gz``, an echo-planar brain volume (128×96×24).

Nothing is downloaded: the files are read from the packages' own folders.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from nibabel.testing import data_path as nibabel_data
from pydicom.data import get_testdata_file
from skimage import data as skdata
from torchvision.transforms.v2.functional import gaussian_blur

__all__ = ["DemoAssets", "load_assets"]


@dataclass(frozen=True)
class DemoAssets:
    """Source material, float in [0, 1].

    Attributes:
        tissue: 3×S×S RGB texture (the fundus interior, vessels and all).
        culture: 1×Hc×Wc grey background without cells.
        cell: 2×s×s sprite: grey value and alpha (body plus its dark halo).
        echo: N×He×We grey cardiac cine frames.
        brain: D×H×W grey volume, axial slices, anterior up.
    """

    tissue: torch.Tensor
    culture: torch.Tensor
    cell: torch.Tensor
    echo: torch.Tensor
    brain: torch.Tensor


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _tissue() -> torch.Tensor:
    retina = torch.from_numpy(skdata.retina()).permute(2, 0, 1).float() / 255.0  # 3×1411×1411
    # The square inscribed in the fundus disc: no black border in the texture.
    inner = _resize(retina[:, 240:1170, 240:1170], (384, 384))
    # Unsharp masking: the fine vessels stay visible after the clip is shrunk to training size.
    return (inner + 1.2 * (inner - gaussian_blur(inner, [25, 25], [5.0, 5.0]))).clamp(0, 1)


def _cell_image() -> np.ndarray:
    image = skdata.cell().astype(np.float32) / 255.0  # 660×550, one cell near (row 377, col 428)
    # Phase-contrast look: mid-grey background with stretched contrast, bright bodies kept below white.
    return 0.42 + 0.45 * np.tanh(3.5 * (image - np.median(image)))


def _culture(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image[:280])).float()[None]  # the cell-free upper part


def _cell(image: np.ndarray) -> torch.Tensor:
    half = 84
    crop = torch.from_numpy(np.ascontiguousarray(image[377 - half:377 + half, 428 - half:428 + half])).float()
    axis = (torch.arange(2 * half, dtype=torch.float32) + 0.5 - half) / half
    radius = torch.sqrt(axis[None, :] ** 2 + axis[:, None] ** 2)
    alpha = ((0.97 - radius) / 0.15).clamp(0, 1)  # body and halo opaque, soft rim
    return torch.stack([crop, alpha])


def _echo() -> torch.Tensor:
    ds = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm", download=False))
    frames = ds.pixel_array.astype(np.float32).mean(-1) / 255.0  # 30×240×320, YBR converted to RGB by pydicom
    return torch.from_numpy(frames)


def _brain() -> torch.Tensor:
    image = nib.as_closest_canonical(nib.load(str(Path(nibabel_data) / "example4d.nii.gz")))
    volume = np.asarray(image.dataobj[..., 0], dtype=np.float32)  # x×y×z (RAS+)
    low, high = np.percentile(volume, [1.0, 99.7])
    volume = np.clip((volume - low) / (high - low), 0.0, 1.0)
    volume = volume.transpose(2, 1, 0)[:, ::-1]  # z×y×x, anterior up
    # Crop to the head's in-plane bounding box (plus a margin) so frames show anatomy, not air.
    rows = np.nonzero(volume.max(axis=(0, 2)) > 0.15)[0]
    cols = np.nonzero(volume.max(axis=(0, 1)) > 0.15)[0]
    top, bottom = max(rows[0] - 3, 0), min(rows[-1] + 4, volume.shape[1])
    left, right = max(cols[0] - 3, 0), min(cols[-1] + 4, volume.shape[2])
    return torch.from_numpy(np.ascontiguousarray(volume[:, top:bottom, left:right], dtype=np.float32))


@functools.lru_cache(maxsize=1)
def load_assets() -> DemoAssets:
    """Load (once per process) the source material."""
    cell_image = _cell_image()
    return DemoAssets(tissue=_tissue(), culture=_culture(cell_image), cell=_cell(cell_image),
                      echo=_echo(), brain=_brain())
