"""Folders of frame images (.png .jpg .tif .bmp) in natural sort order, and single images."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from medsora.data.sources.downscale import check_pixels, downscale, target_size
from medsora.data.sources.formats import UnreadableVideo, is_image_file, is_tiff_stack
from medsora.data.sources.intensity import robust_uint8, to_rgb

__all__ = ["natural_key", "list_frame_files", "read_frames", "probe_frames"]

_DIGITS = re.compile(r"(\d+)")
_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def natural_key(name: str) -> tuple:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name))


def is_frame_image(path: Path) -> bool:
    """An image file that is one frame (a multi-page TIFF is a video of its own)."""
    return is_image_file(path) and not is_tiff_stack(path)


def list_frame_files(folder: Path) -> list[Path]:
    """The single-frame image files of a folder in natural order (hidden files ignored)."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_frame_image(p)]
    return sorted(files, key=lambda p: natural_key(p.name))


def _load(path: Path, short_side: int | None = None, max_pixels: int | None = None) -> tuple[np.ndarray, tuple]:
    """One image as H×W×C: 8-bit modes as RGB uint8, 16-bit/float modes as H×W×1 with their values,
    and its source size and mode (to check that all frames of a folder match).

    Frames over ``max_pixels`` are refused from the header; with ``short_side`` the image is
    made small as it is read (JPEG: Pillow's ``draft`` decodes at 1/2, 1/4 or 1/8 scale), so
    only one full-size frame is ever in memory.
    """
    with Image.open(path) as image:
        check_pixels(path, image.height, image.width, max_pixels)
        source = (image.width, image.height, "value" if image.mode.startswith(("I", "F")) else "RGB")
        size = target_size(image.height, image.width, short_side)
        if size is not None and image.format == "JPEG":
            image.draft("RGB", (size[1], size[0]))  # never below the requested size
        if source[2] == "value":
            # 16-bit and float images keep their values; they are scaled jointly later.
            return downscale(np.asarray(image)[..., None], short_side), source
        return downscale(np.asarray(image.convert("RGB")), short_side), source


def probe_frames(path: Path, max_pixels: int | None = None) -> dict:
    """Header facts of a frame folder or single image: count and size of the first frame."""
    files = list_frame_files(path) if path.is_dir() else [path]
    if not files:
        raise UnreadableVideo(path, "no frame images")
    try:
        with Image.open(files[0]) as image:
            width, height = image.size
    except _IMAGE_ERRORS as err:
        raise UnreadableVideo(path, f"{files[0].name}: {err}") from None
    check_pixels(files[0], height, width, max_pixels)
    return {"format": "frames", "num_frames": len(files), "height": height, "width": width, "fps": None}


def read_frames(path: Path, indices: Sequence[int] | None = None, percentiles=(0.5, 99.5),
                short_side: int | None = None, max_pixels: int | None = None) -> tuple[np.ndarray, dict]:
    """Read a frame folder (or one image as a 1-frame video).

    Only the requested files are opened, each downscaled to ``short_side`` as it is read
    (frames over ``max_pixels`` are refused). 8-bit images are kept as they are;
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
    sources: dict[int, tuple] = {}
    for index in sorted(set(order)):
        try:
            loaded[index], sources[index] = _load(files[index], short_side, max_pixels)
        except _IMAGE_ERRORS as err:
            raise UnreadableVideo(path, f"{files[index].name}: {err}") from None
    first = files[order[0]] if order else files[0]
    shapes = set(sources.values())
    if len(shapes) > 1:
        sizes = ", ".join(f"{w}×{h} {mode}" for w, h, mode in sorted(shapes))
        raise UnreadableVideo(path, f"frames differ in size or channels ({sizes}); all frames must match {first.name}")
    stack = np.stack([loaded[i] for i in order])
    if stack.dtype != np.uint8:
        stack = robust_uint8(stack, percentiles)
    width, height = sources[order[0]][:2] if order else (stack.shape[2], stack.shape[1])
    meta = {"format": "frames", "num_frames": len(files), "height": height, "width": width, "fps": None,
            "files": [files[i].name for i in order]}
    return to_rgb(stack), meta
