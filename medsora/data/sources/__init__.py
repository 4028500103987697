"""Readers for the formats clinical videos come in, behind one call.

``read_video(path)`` returns ``(frames, meta)`` with ``frames`` a uint8
T×H×W×3 array (grey sources repeated to 3 channels) and ``meta`` a dict holding
at least ``format``, ``num_frames`` (frames in the whole source), ``height``,
``width`` and ``fps`` (None when the source has no rate). Any file that cannot be
decoded raises :class:`UnreadableVideo` naming the path and the reason.

``probe_video(path)`` reads only headers (and one frame of a video file) to learn
the same ``meta`` cheaply; ``num_frames`` may be 0 when a container does not
record its length.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from medsora.data.sources.dicom import probe_dicom_file, probe_dicom_series, read_dicom_file, read_dicom_series
from medsora.data.sources.downscale import check_pixels, downscale
from medsora.data.sources.formats import UnreadableVideo, source_format
from medsora.data.sources.frames import probe_frames, read_frames
from medsora.data.sources.nifti import probe_nifti, read_nifti
from medsora.data.sources.tiff import probe_tiff_stack, read_tiff_stack
from medsora.data.sources.video import probe_video_file, read_video_file

__all__ = ["read_video", "probe_video", "UnreadableVideo", "source_format"]


def read_video(
    path: os.PathLike | str,
    *,
    indices: Sequence[int] | None = None,
    axis: int = 2,
    slice_index: int | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    short_side: int | None = None,
    max_pixels: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Decode any supported source to RGB frames.

    Args:
        path: a video file (.mp4 .avi .mov .mkv .webm .gif …), a folder of frame
            images (natural sort order), a multi-page TIFF (one frame per page), a DICOM file, a folder of single-frame
            DICOMs (InstanceNumber order), a NIfTI file, or a single image.
        indices: frames to return, in order (repeats allowed); ``None`` = all.
            Readers decode only what they need where the format allows.
        axis: NIfTI slice axis (RAS+ 0/1/2) for 3-D volumes and 4-D series.
        slice_index: slice along ``axis`` shown for 4-D NIfTI (default: middle).
        percentiles: (low, high) for robust 8-bit scaling of sources without a
            display window (NIfTI, DICOM without window, 16-bit images).
        short_side: downscale frames so that their short side is at most this. Video files,
            frame folders and TIFF stacks scale each frame as it is decoded (memory bounded by
            the output); DICOM and NIfTI readers decode their pixel data whole, then scale.
        max_pixels: refuse sources whose frames have more pixels (from the header, before
            decoding; ``data.max_frame_pixels``).
    Returns:
        frames: uint8 T×H×W×3; meta: dict (format, num_frames, height, width, fps, …).
    Raises:
        UnreadableVideo: missing, empty, truncated, corrupt or unsupported source.
    """
    path = Path(path)
    if indices is not None and len(indices) == 0:
        raise ValueError("indices must name at least one frame (or be None for all frames)")
    fmt = source_format(path)
    if fmt == "video":
        return read_video_file(path, indices, short_side, max_pixels)
    if fmt in ("frames", "image"):
        return read_frames(path, indices, percentiles, short_side, max_pixels)
    if fmt == "tiff_stack":
        return read_tiff_stack(path, indices, percentiles, short_side, max_pixels)
    check_pixels(path, *_plane(probe_video(path, axis=axis)), max_pixels)
    if fmt == "dicom":
        frames, meta = read_dicom_file(path, indices, percentiles)
    elif fmt == "dicom_series":
        frames, meta = read_dicom_series(path, indices, percentiles)
    else:
        frames, meta = read_nifti(path, indices, axis=axis, slice_index=slice_index, percentiles=percentiles)
    if short_side:
        frames = np.stack([downscale(frame, short_side) for frame in frames])
    return frames, meta


def _plane(meta: dict) -> tuple[int, int]:
    return int(meta["height"]), int(meta["width"])


def probe_video(path: os.PathLike | str, *, axis: int = 2, max_pixels: int | None = None) -> dict:
    """Header facts of a source (format, num_frames, height, width, fps) without a full decode.

    Frames over ``max_pixels`` are refused (UnreadableVideo naming the limit).

    Raises:
        UnreadableVideo: as :func:`read_video`, for problems visible in the header
            (or, for video files, in the first frame).
    """
    path = Path(path)
    fmt = source_format(path)
    if fmt == "video":
        return probe_video_file(path, max_pixels)
    if fmt in ("frames", "image"):
        return probe_frames(path, max_pixels)
    if fmt == "tiff_stack":
        return probe_tiff_stack(path, max_pixels)
    if fmt == "dicom":
        meta = probe_dicom_file(path)
    elif fmt == "dicom_series":
        meta = probe_dicom_series(path)
    else:
        meta = probe_nifti(path, axis=axis)
    check_pixels(path, *_plane(meta), max_pixels)
    return meta
