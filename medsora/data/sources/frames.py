"""Folders of frame images (.png .jpg .tif .bmp) in natural sort order, and single images."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from medsora.data.sources.formats import UnreadableVideo, is_image_file
from medsora.data.sources.intensity import robust_uint8, to_rgb

__all__ = ["natural_key", "list_frame_files", "read_frames", "probe_frames"]

_DIGITS = re.compile(r"(\d+)")
_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name))


def list_frame_files(folder: Path) -> list[Path]:
    """The image files of a folder in natural order (hidden files ignored)."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p)]
    return sorted(files, key=lambda p: natural_key(p.name))


def _load(path: Path) -> np.ndarray:
    """One image as H×W×C: 8-bit modes as RGB uint8, 16-bit/float modes as H×W×1 with their values."""
    with Image.open(path) as image:
        if image.mode.startswith(("I", "F")):
            # 16-bit and float images keep their values; they are scaled jointly later.
            return np.asarray(image)[..., None]
        return np.asarray(image.convert("RGB"))


def probe_frames(path: Path) -> dict:
    """Header facts of a frame folder or single image: count and size of the first frame."""
    files = list_frame_files(path) if path.is_dir() else [path]
    if not files:
        raise UnreadableVideo(path, "no frame images")
    try:
        with Image.open(files[0]) as image:
            width, height = image.size
    except _IMAGE_ERRORS as err:
        raise UnreadableVideo(path, f"{files[0].name}: {err}") from None
    return {"format": "frames", "num_frames": len(files), "height": height, "width": width, "fps": None}


def read_frames(path: Path, indices: Sequence[int] | None = None, percentiles=(0.5, 99.5)) -> tuple[np.ndarray, dict]:
    """Read a frame folder (or one image as a 1-frame video).

    Only the requested files are opened. 8-bit images are kept as they are;
    16-bit or float images are scaled to 8 bits with robust percentiles taken over
    all loaded frames together.

    Returns:
        frames: uint8 T×H×W×3; meta: format, num_frames (files in the folder),
        height, width, fps (None: frame folders carry no rate), files.
    Raises:
        UnreadableVideo: empty folder, an unreadable image, or frames of different sizes.
    """
    files = list_frame_files(path) if path.is_dir() else [path]
    if not files:
        raise UnreadableVideo(path, "no frame images")
    order = list(range(len(files))) if indices is None else [int(i) for i in indices]
    if order and max(order) >= len(files):
        raise UnreadableVideo(path, f"frame {max(order)} requested, the folder has {len(files)} images")
    loaded: dict[int, np.ndarray] = {}
    for index in sorted(set(order)):
        try:
            loaded[index] = _load(files[index])
        except _IMAGE_ERRORS as err:
            raise UnreadableVideo(path, f"{files[index].name}: {err}") from None
    first = files[order[0]] if order else files[0]
    shapes = {a.shape for a in loaded.values()}
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h}×{c}" for h, w, c in sorted(shapes))
        raise UnreadableVideo(path, f"frames differ in size or channels ({sizes}); all frames must match {first.name}")
    stack = np.stack([loaded[i] for i in order])
    if stack.dtype != np.uint8:
        stack = robust_uint8(stack, percentiles)
    height, width = stack.shape[1:3]
    meta = {"format": "frames", "num_frames": len(files), "height": height, "width": width, "fps": None,
            "files": [files[i].name for i in order]}
    return to_rgb(stack), meta
