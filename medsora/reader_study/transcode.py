"""One clip → a browser-playable H.264 mp4 of the study's common size, length and frame rate.

Every item is cut, resized and encoded the same way, whatever it came from, so neither the
container nor the picture carries a hint of its origin: square ``size``×``size`` (short side
resized with antialiasing, then a centre crop), exactly ``frames`` frames from the middle of the
source, ``fps`` frames per second, libx264 High profile in yuv420p at one CRF, ``faststart``
(the index first, so playback starts before the download ends), and ``bitexact`` muxing (no
encoder version string or creation time in the file).

``medsora.data.video_io.write_mp4`` encodes generated samples; it neither moves the index to the
front nor strips the muxer's metadata, which a served study clip needs, hence this encoder.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from av.codec.context import Flags
from torchvision.transforms.v2 import functional as TF

from medsora.data.sources import read_video
from medsora.data.sources.formats import UnreadableVideo

__all__ = ["ClipTooShort", "study_frames", "encode_mp4", "transcode"]


class ClipTooShort(Exception):
    """A readable clip with fewer frames than the study's length."""


def study_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``T×H×W×3`` uint8 → ``T×size×size×3`` uint8: short side to ``size`` (antialiased), centre crop."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    video = TF.resize(video, [size], antialias=True)
    video = TF.center_crop(video, [size, size])
    return video.permute(0, 2, 3, 1).contiguous().numpy()


def encode_mp4(frames: np.ndarray, fps: int, crf: int = 18) -> bytes:
    """``T×H×W×3`` uint8 (H, W even) → mp4 bytes (H.264, yuv420p, faststart, bitexact)."""
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even sides, got {w}x{h}")
    with tempfile.TemporaryDirectory(prefix="medsora-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        options = {"movflags": "+faststart", "fflags": "+bitexact"}
        with av.open(str(path), mode="w", format="mp4", options=options) as container:
            stream = container.add_stream("libx264", rate=int(fps))
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1  # x264's threaded rate control depends on timing
            stream.codec_context.flags |= int(Flags.bitexact)
            stream.options = {"crf": str(crf), "profile": "high", "preset": "medium"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path.read_bytes()


def transcode(path: Path, total: int, *, frames: int, size: int, fps: int, crf: int = 18) -> bytes:
    """Cut the middle ``frames`` frames of the source at ``path`` and encode them for the study.

    ``total`` is the source's frame count from :func:`medsora.data.sources.probe_video` (0 when the
    container does not record it: the whole source is then decoded).

    Raises:
        UnreadableVideo: the source cannot be decoded.
        ClipTooShort: it has fewer than ``frames`` frames.
    """
    if total and total < frames:
        raise ClipTooShort(f"{path}: {total} frames, fewer than the study's {frames} (lower --frames)")
    if total:
        start = (total - frames) // 2
        video, _ = read_video(path, indices=list(range(start, start + frames)))
    else:  # the container does not record its length: decode it all
        video, _ = read_video(path)
        if len(video) < frames:
            raise ClipTooShort(f"{path}: {len(video)} frames, fewer than the study's {frames} (lower --frames)")
        start = (len(video) - frames) // 2
        video = video[start:start + frames]
    if len(video) != frames:
        raise UnreadableVideo(path, f"decoded {len(video)} of {frames} frames")
    return encode_mp4(study_frames(video, size), fps, crf)
