"""What kind of source a path is, and the error raised when it cannot be read.

A *video* here is anything that yields an ordered sequence of 2-D frames: a
video file, a folder of frame images, a DICOM file (multi-frame cine or a single
frame), a folder of single-frame DICOMs (a series), or a NIfTI volume.
"""
from __future__ import annotations

import os
from pathlib import Path

import tifffile

__all__ = [
    "UnreadableVideo",
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "DICOM_SUFFIXES",
    "NIFTI_SUFFIXES",
    "is_dicom_file",
    "is_image_file",
    "is_nifti_file",
    "is_tiff_stack",
    "tiff_pages",
    "TIFF_SUFFIXES",
    "source_format",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")


class UnreadableVideo(Exception):
    """A source that cannot be decoded (missing, empty, truncated, corrupt, unsupported).

    Attributes:
        path: the offending file or folder.
        reason: a short human-readable cause ("moov atom not found", "no frames", ...).
    """

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_nifti_file(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def tiff_pages(path: Path) -> int:
    """Pages (IFDs) of a TIFF file from its headers (tifffile); 0 when it does not parse."""
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError, EOFError, RuntimeError):
        return 0


def is_tiff_stack(path: Path) -> bool:
    """A ``.tif``/``.tiff`` file holding more than one page: a video of its own, one frame per page."""
    return path.suffix.lower() in TIFF_SUFFIXES and path.is_file() and tiff_pages(path) > 1


def is_dicom_file(path: Path) -> bool:
    """A ``.dcm``/``.dicom`` file, or an extension-less file with the DICOM preamble.

    Clinical exports often name files ``IM0001`` without a suffix; the 128-byte
    preamble followed by ``DICM`` identifies them without parsing.
    """
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if suffix or not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def source_format(path: Path) -> str:
    """The reader a path needs: ``video``, ``image``, ``tiff_stack``, ``dicom``, ``nifti``, ``frames`` or ``dicom_series``.

    A folder is a frame sequence when it holds single-frame images, else a DICOM series when it
    holds DICOM files. A multi-page TIFF file is a video of its own (``tiff_stack``). Raises
    UnreadableVideo for anything else.
    """
    if path.is_dir():
        children = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if any(is_image_file(p) and not is_tiff_stack(p) for p in children):
            return "frames"
        if any(is_dicom_file(p) for p in children):
            return "dicom_series"
        raise UnreadableVideo(path, "folder holds no frame images (.png .jpg .tif .bmp) and no DICOM files")
    if not path.exists():
        raise UnreadableVideo(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "tiff_stack" if is_tiff_stack(path) else "image"
    if is_nifti_file(path):
        return "nifti"
    if is_dicom_file(path):
        return "dicom"
    raise UnreadableVideo(
        path,
        f"unsupported file type '{suffix or path.name}' (videos: {' '.join(sorted(VIDEO_SUFFIXES))}; "
        "frame folders; DICOM .dcm; NIfTI .nii/.nii.gz)",
    )
