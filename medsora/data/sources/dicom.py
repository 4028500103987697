"""DICOM with pydicom: multi-frame cine files, single frames, and folders of single-frame slices.

Display pipeline (DICOM PS3.3 C.11): stored values -> modality LUT / rescale
slope+intercept -> VOI LUT or window center/width when the header has one
(robust percentiles otherwise) -> MONOCHROME1 inverted so that white is high.
Colour data (RGB, YBR_* converted by pydicom, PALETTE COLOR through its LUT)
is brought to 8 bits.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from medsora.data.sources.formats import UnreadableVideo, is_dicom_file
from medsora.data.sources.frames import natural_key
from medsora.data.sources.intensity import robust_uint8, scale_to_uint8, to_rgb

__all__ = ["read_dicom_file", "read_dicom_series", "probe_dicom_file", "probe_dicom_series", "dicom_frame_count"]

_DICOM_ERRORS = (
    InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, IndexError,
    AttributeError, NotImplementedError, RuntimeError, struct.error,
)
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def dicom_frame_count(ds: pydicom.Dataset) -> int:
    """Frames in a dataset: NumberOfFrames, or 1 when absent."""
    return int(ds.get("NumberOfFrames", 1) or 1)


def _has_voi(ds: pydicom.Dataset) -> bool:
    return bool(ds.get("VOILUTSequence")) or ("WindowCenter" in ds and "WindowWidth" in ds)


def _voi_output_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The value range pydicom's ``apply_voi_lut`` maps into (it is not exposed by pydicom).

    A VOI LUT outputs [0, 2**bits-1] of its descriptor; linear/sigmoid windowing
    outputs the stored-value range after the modality rescale (PS3.3 C.11.2.1.2).
    """
    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    if ds.get("ModalityLUTSequence"):
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        low, high = 0.0, float(2**bits - 1)
    elif int(ds.PixelRepresentation) == 0:
        low, high = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        low, high = float(-(2 ** (int(ds.BitsStored) - 1))), float(2 ** (int(ds.BitsStored) - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        low, high = low * slope + intercept, high * slope + intercept
    return low, high


def _as_frames(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """pixel_array -> F×R×C or F×R×C×3 (pydicom drops the frame axis for one frame)."""
    return arr if dicom_frame_count(ds) > 1 else arr[None]


def _colour_uint8(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype == np.uint8:
        return arr
    top = float(2 ** int(ds.BitsStored) - 1) if ds.PhotometricInterpretation != "PALETTE COLOR" else 65535.0
    return scale_to_uint8(arr, 0.0, top)


def _display_uint8(frames: Sequence[np.ndarray], datasets: Sequence[pydicom.Dataset], percentiles) -> np.ndarray:
    """Stored frames (one array per dataset, each F×R×C[×3]) -> uint8 F×R×C×3, joined along frames."""
    photometric = str(datasets[0].PhotometricInterpretation)
    if photometric not in _MONOCHROME:
        return to_rgb(np.concatenate([_colour_uint8(a, ds) for a, ds in zip(frames, datasets)]))
    values = [np.asarray(apply_modality_lut(a, ds), dtype=np.float32) for a, ds in zip(frames, datasets)]
    if all(_has_voi(ds) for ds in datasets):
        out = np.concatenate([
            scale_to_uint8(apply_voi_lut(v, ds), *_voi_output_range(ds)) for v, ds in zip(values, datasets)
        ])
    else:
        out = robust_uint8(np.concatenate(values), percentiles)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return to_rgb(out)


def _meta(ds: pydicom.Dataset, num_frames: int, fmt: str) -> dict:
    time = ds.get("FrameTime")  # ms between frames of a cine
    rate = ds.get("CineRate") or ds.get("RecommendedDisplayFrameRate")
    fps = float(rate) if rate else (1000.0 / float(time) if time else None)
    return {
        "format": fmt,
        "num_frames": num_frames,
        "height": int(ds.Rows),
        "width": int(ds.Columns),
        "fps": fps,
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "modality_tag": str(ds.get("Modality", "")),
    }


def probe_dicom_file(path: Path) -> dict:
    """Header facts without decoding pixels."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "Rows" not in ds:
            raise UnreadableVideo(path, "DICOM file holds no image (no Rows/Columns)")
        return _meta(ds, dicom_frame_count(ds), "dicom")
    except _DICOM_ERRORS as err:
        raise UnreadableVideo(path, f"not a readable DICOM file: {type(err).__name__}: {err}") from None


def read_dicom_file(path: Path, indices: Sequence[int] | None = None, percentiles=(0.5, 99.5)) -> tuple[np.ndarray, dict]:
    """A multi-frame (cine) or single-frame DICOM file as RGB frames.

    Intensity mapping is computed over all frames so a clip's brightness does
    not depend on which frames were sampled.

    Returns:
        frames: uint8 T×H×W×3; meta: format, num_frames, height, width, fps
        (from FrameTime/CineRate), photometric, modality_tag.
    """
    try:
        ds = pydicom.dcmread(path)
        frames = _display_uint8([_as_frames(ds.pixel_array, ds)], [ds], percentiles)
    except _DICOM_ERRORS as err:
        raise UnreadableVideo(path, f"not a readable DICOM file: {type(err).__name__}: {err}") from None
    meta = _meta(ds, len(frames), "dicom")
    if indices is not None:
        if max(indices) >= len(frames):
            raise UnreadableVideo(path, f"frame {max(indices)} requested, the file has {len(frames)} frames")
        frames = frames[np.asarray(indices, dtype=np.int64)]
    return np.ascontiguousarray(frames), meta


def _series_headers(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    """The folder's single-frame DICOMs ordered by InstanceNumber (file name breaks ties).

    Multi-frame files in the same folder are videos of their own and are left out.
    """
    files = sorted((p for p in folder.iterdir() if p.is_file() and is_dicom_file(p)), key=lambda p: natural_key(p.name))
    headers = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except _DICOM_ERRORS as err:
            raise UnreadableVideo(folder, f"{file.name}: not a readable DICOM file: {type(err).__name__}: {err}") from None
        if dicom_frame_count(ds) == 1:
            headers.append((file, ds))
    if not headers:
        raise UnreadableVideo(folder, "no single-frame DICOM files (multi-frame files are videos of their own)")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(series) > 1:
        raise UnreadableVideo(folder, f"holds {len(series)} series ({', '.join(sorted(series))}); "
                                      "put each series in its own folder")
    numbered = [(int(ds.InstanceNumber) if ds.get("InstanceNumber") is not None else 2**31, i)
                for i, (_, ds) in enumerate(headers)]
    return [headers[i] for _, i in sorted(numbered)]


def probe_dicom_series(folder: Path) -> dict:
    headers = _series_headers(folder)
    return _meta(headers[0][1], len(headers), "dicom_series")


def read_dicom_series(folder: Path, indices: Sequence[int] | None = None, percentiles=(0.5, 99.5)) -> tuple[np.ndarray, dict]:
    """A folder of single-frame DICOMs, ordered by InstanceNumber, as one video.

    Only the requested slices are decoded. Each slice uses its own window when
    every slice has one; otherwise robust percentiles over the decoded slices.
    """
    headers = _series_headers(folder)
    order = list(range(len(headers))) if indices is None else [int(i) for i in indices]
    if max(order) >= len(headers):
        raise UnreadableVideo(folder, f"frame {max(order)} requested, the series has {len(headers)} slices")
    needed = sorted(set(order))
    arrays, datasets = [], []
    for index in needed:
        file = headers[index][0]
        try:
            ds = pydicom.dcmread(file)
            arrays.append(_as_frames(ds.pixel_array, ds))
        except _DICOM_ERRORS as err:
            raise UnreadableVideo(folder, f"{file.name}: {type(err).__name__}: {err}") from None
        datasets.append(ds)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UnreadableVideo(folder, f"slices differ in size {sorted(shapes)}")
    try:
        decoded = _display_uint8(arrays, datasets, percentiles)
    except _DICOM_ERRORS as err:
        raise UnreadableVideo(folder, f"{type(err).__name__}: {err}") from None
    position = {index: k for k, index in enumerate(needed)}
    frames = decoded[[position[i] for i in order]]
    meta = _meta(datasets[0], len(headers), "dicom_series")
    meta["files"] = [headers[i][0].name for i in order]
    return np.ascontiguousarray(frames), meta
