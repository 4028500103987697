"""NIfTI volumes with nibabel: 4-D series (last axis is time) and 3-D volumes read slice by slice."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from medsora.data.sources.formats import UnreadableVideo
from medsora.data.sources.intensity import robust_uint8, to_rgb

__all__ = ["read_nifti", "probe_nifti"]

_NIFTI_ERRORS = (ImageFileError, OSError, EOFError, ValueError, zlib.error, MemoryError)


def _load(path: Path):
    try:
        image = nib.load(str(path))
        # RAS+ orientation so that "axis 2" means the same anatomical direction for every file.
        return nib.as_closest_canonical(image) if len(image.shape) >= 3 else image
    except _NIFTI_ERRORS as err:
        raise UnreadableVideo(path, f"not a readable NIfTI file: {type(err).__name__}: {err}") from None


def _frame_count(shape: tuple[int, ...], axis: int) -> int:
    if len(shape) == 2:
        return 1
    if len(shape) == 3:
        return shape[axis]
    return shape[3]


def _shape(path: Path, image, axis: int) -> tuple[int, ...]:
    """The image shape without trailing singleton axes beyond the third (a 3-D volume saved as x×y×z×1)."""
    shape = [int(s) for s in image.shape]
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    if len(shape) not in (2, 3, 4):
        raise UnreadableVideo(path, f"volume shape {tuple(image.shape)}: expected 2-D, 3-D or 4-D (time last)")
    if len(shape) >= 3 and not 0 <= axis <= 2:
        raise UnreadableVideo(path, f"slice axis {axis} must be 0, 1 or 2 (data.nifti_axis)")
    return tuple(shape)


def probe_nifti(path: Path, axis: int = 2) -> dict:
    """Header facts (shape, frame count) without reading voxel data."""
    shape = _shape(path, _load(path), axis)
    planes = [s for i, s in enumerate(shape[:3]) if i != axis] if len(shape) >= 3 else list(shape)
    return {"format": "nifti", "num_frames": _frame_count(shape, axis), "height": planes[1], "width": planes[0],
            "fps": None, "shape": shape}


def _plane_to_image(plane: np.ndarray) -> np.ndarray:
    """A RAS plane (first in-plane axis, second in-plane axis) -> rows×cols with the second axis pointing up."""
    return plane.T[::-1]


def read_nifti(path: Path, indices: Sequence[int] | None = None, axis: int = 2, slice_index: int | None = None,
               percentiles=(0.5, 99.5)) -> tuple[np.ndarray, dict]:
    """A NIfTI file as frames.

    * 4-D (x, y, z, t): one frame per time point, showing slice ``slice_index``
      (default: the middle one) along ``axis``;
    * 3-D (x, y, z): one frame per slice along ``axis``;
    * 2-D: a single frame.

    Volumes are reoriented to RAS+ first; frames are displayed with the second
    in-plane axis pointing up (anterior/superior at the top). Intensities go to
    8 bits with robust percentiles over the whole frame sequence; NaN/Inf voxels (masked
    regions of statistical maps) show as the low end, and a volume without any finite voxel is
    refused as bad data.

    Returns:
        frames: uint8 T×H×W×3; meta: format, num_frames, height, width, fps
        (from the time unit of pixdim[4] when given), shape, axis.
    """
    image = _load(path)
    shape = _shape(path, image, axis)
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except _NIFTI_ERRORS as err:
        raise UnreadableVideo(path, f"voxel data does not read: {type(err).__name__}: {err}") from None
    if not np.isfinite(data).any():
        raise UnreadableVideo(path, "no finite voxel value (all NaN/Inf): bad data, not a black clip")
    if data.ndim == 2:
        planes = _plane_to_image(data)[None]
    elif data.ndim == 3:
        planes = np.stack([_plane_to_image(p) for p in np.moveaxis(data, axis, 0)])
    else:
        depth = data.shape[axis]
        index = depth // 2 if slice_index is None else int(slice_index)
        if not 0 <= index < depth:
            raise UnreadableVideo(path, f"slice {index} requested along axis {axis}, the volume has {depth} (data.nifti_slice)")
        series = np.take(data, index, axis=axis)  # (plane0, plane1, t)
        planes = np.stack([_plane_to_image(series[..., t]) for t in range(series.shape[-1])])
    frames = to_rgb(robust_uint8(planes, percentiles))
    fps = None
    if data.ndim == 4:
        step = float(image.header.get_zooms()[3]) if len(image.header.get_zooms()) > 3 else 0.0
        unit = image.header.get_xyzt_units()[1]
        seconds = step * {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(unit, 0.0)
        fps = 1.0 / seconds if seconds > 0 else None
    meta = {"format": "nifti", "num_frames": len(frames), "height": frames.shape[1], "width": frames.shape[2],
            "fps": fps, "shape": shape, "axis": axis}
    if indices is not None:
        if max(indices) >= len(frames):
            raise UnreadableVideo(path, f"frame {max(indices)} requested, the volume has {len(frames)} frames")
        frames = frames[np.asarray(indices, dtype=np.int64)]
    return np.ascontiguousarray(frames), meta
