"""Deterministic, lossless .mp4 writing with PyAV."""
from __future__ import annotations

import functools
from pathlib import Path

import av
from av.codec.context import Flags
import numpy as np

__all__ = ["video_encoder", "write_mp4"]

# (codec, pixel format, options), best first. libx264rgb with qp 0 stores RGB exactly, so reading a
# demo clip back gives the frames that were generated; mpeg4 at the finest quantiser is the fallback
# for PyAV builds without x264 (lossy, yuv420p).
_ENCODERS = (
    ("libx264rgb", "rgb24", {"qp": "0", "preset": "ultrafast"}),
    ("mpeg4", "yuv420p", {"qscale": "1"}),
)


@functools.lru_cache(maxsize=1)
def video_encoder() -> tuple[str, str, dict]:
    """The first encoder of the preference list that this PyAV build has."""
    for name, pix_fmt, options in _ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        return name, pix_fmt, dict(options)
    raise RuntimeError("PyAV has neither libx264rgb nor mpeg4 encoders; install a PyAV wheel with FFmpeg codecs")


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write uint8 T×H×W×3 frames (H, W even) to an .mp4.

    Same frames -> byte-identical file: one encoder thread (x264's threaded
    rate control and slicing depend on timing) and ``bitexact`` muxing/encoding
    (no library version strings or timestamps in the headers).
    """
    name, pix_fmt, options = video_encoder()
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(name, rate=int(fps))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.codec_context.thread_count = 1
        stream.codec_context.flags |= int(Flags.bitexact)
        stream.options = options
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
