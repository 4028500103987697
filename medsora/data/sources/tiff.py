"""Multi-page TIFF files (microscopy time-lapses, exported cines) read with tifffile: one frame per page.

Pillow reads only the first page of such a file and cannot decode many scientific TIFFs
(planar RGB, float pages); tifffile reads each page with its own layout (``page.axes``).
A single-page TIFF is an ordinary image (:mod:`medsora.data.sources.frames`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import tifffile

from medsora.data.sources.downscale import check_pixels, downscale
from medsora.data.sources.formats import TIFF_SUFFIXES, UnreadableVideo, is_tiff_stack, tiff_pages
from medsora.data.sources.intensity import robust_uint8, to_rgb

__all__ = ["TIFF_SUFFIXES", "tiff_pages", "is_tiff_stack", "probe_tiff_stack", "read_tiff_stack"]

_TIFF_ERRORS = (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError, EOFError, RuntimeError)


def _page_frame(page) -> np.ndarray:
    """One page as H×W×C (C = 1, 3 or 4) in its stored dtype; planar samples moved last."""
    array = page.asarray()
    axes = page.axes
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"page of shape {page.shape} (axes {axes}) is not a 2-D image")
    return array


def probe_tiff_stack(path: Path, max_pixels: int | None = None) -> dict:
    """Header facts: page count and the first page's size."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            height, width = int(page.imagelength), int(page.imagewidth)
            count = len(tif.pages)
    except _TIFF_ERRORS as err:
        raise UnreadableVideo(path, f"not a readable TIFF file: {type(err).__name__}: {err}") from None
    check_pixels(path, height, width, max_pixels)
    return {"format": "tiff_stack", "num_frames": count, "height": height, "width": width, "fps": None}


def read_tiff_stack(path: Path, indices: Sequence[int] | None = None, percentiles=(0.5, 99.5),
                    short_side: int | None = None, max_pixels: int | None = None) -> tuple[np.ndarray, dict]:
    """The pages of a multi-page TIFF as RGB frames (only the requested pages are decoded).

    8-bit pages are kept as they are; other types go to 8 bits with robust percentiles over the
    decoded pages together. Each page is downscaled to ``short_side`` as it is read.
    """
    meta = probe_tiff_stack(path, max_pixels)
    count = meta["num_frames"]
    order = list(range(count)) if indices is None else [int(i) for i in indices]
    if max(order) >= count:
        raise UnreadableVideo(path, f"frame {max(order)} requested, the TIFF has {count} pages")
    loaded = {}
    try:
        with tifffile.TiffFile(path) as tif:
            for index in sorted(set(order)):
                loaded[index] = downscale(_page_frame(tif.pages[index]), short_side)
    except _TIFF_ERRORS as err:
        raise UnreadableVideo(path, f"page does not decode: {type(err).__name__}: {err}") from None
    shapes = {a.shape for a in loaded.values()}
    if len(shapes) > 1:
        raise UnreadableVideo(path, f"pages differ in size or samples ({sorted(shapes)})")
    stack = np.stack([loaded[i] for i in order])
    if stack.dtype != np.uint8:
        stack = robust_uint8(stack, percentiles)
    return to_rgb(stack), meta
