"""Video files (.mp4 .avi .mov .mkv .webm .gif …) decoded with PyAV."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import av
import numpy as np

from medsora.data.sources.formats import UnreadableVideo

__all__ = ["read_video_file", "probe_video_file"]

# Errors libav/PyAV raise on corrupt input; anything else is a bug and propagates.
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError)


def _stream_meta(stream) -> dict:
    rate = stream.average_rate or stream.guessed_rate
    return {
        "format": "video",
        "codec": stream.codec_context.name,
        "fps": float(rate) if rate else None,
        "num_frames": int(stream.frames or 0),  # from the container header; 0 = unknown
        "height": int(stream.codec_context.height),
        "width": int(stream.codec_context.width),
    }


def _open(path: Path):
    try:
        container = av.open(str(path), mode="r")
    except _AV_ERRORS as err:
        raise UnreadableVideo(path, f"cannot open: {err}") from None
    if not container.streams.video:
        container.close()
        raise UnreadableVideo(path, "no video stream")
    return container


def probe_video_file(path: Path) -> dict:
    """Header facts and one decoded frame (catches files whose header is fine but data is not)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        meta = _stream_meta(stream)
        try:
            next(container.decode(stream))
        except StopIteration:
            raise UnreadableVideo(path, "no decodable frames") from None
        except _AV_ERRORS as err:
            raise UnreadableVideo(path, f"first frame does not decode: {err}") from None
        return meta
    finally:
        container.close()


def read_video_file(path: Path, indices: Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
    """Decode a video file to RGB frames.

    Decoding is sequential and stops after the last requested frame, so a clip
    near the start of a long video costs only the frames up to it.

    Args:
        path: the video file.
        indices: frame indices to return, in order (repeats allowed); ``None`` = all.
    Returns:
        frames: uint8 T×H×W×3 (T = len(indices) or the number of frames);
        meta: format, codec, fps, num_frames (header count, or the decoded count
        when the whole file was read), height, width.
    Raises:
        UnreadableVideo: cannot open, no video stream, a decode error, no frames,
            or fewer decodable frames than requested (truncated file).
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading; output is identical to single-threaded
        meta = _stream_meta(stream)
        wanted = None if indices is None else set(int(i) for i in indices)
        last = None if wanted is None else max(wanted)
        kept: dict[int, np.ndarray] = {}
        count, final = 0, None
        try:
            for count, frame in enumerate(container.decode(stream), start=1):
                index, final = count - 1, frame
                if wanted is None or index in wanted:
                    kept[index] = frame.to_ndarray(format="rgb24")
                if last is not None and index >= last:
                    break
        except _AV_ERRORS as err:
            raise UnreadableVideo(path, f"decode error after {count} frames: {err}") from None
    finally:
        container.close()
    if count == 0:
        raise UnreadableVideo(path, "no decodable frames")
    # A header that lists more frames than decode means the file was cut short, with one frame of
    # slack: some muxers count a trailing frame that the decoder drops. Within the slack, the
    # header's last frame is served by the last decoded one, as when padding a clip.
    header = meta["num_frames"]
    slack = header == count + 1
    if indices is None:
        if header > count and not slack:
            raise UnreadableVideo(path, f"truncated: the header lists {header} frames, only {count} decode")
        meta["num_frames"] = count
        order = range(count)
    else:
        if last >= count and not (slack and last == count):
            raise UnreadableVideo(path, f"truncated: frame {last} requested, only {count} frames decode")
        if last == count:
            kept[count] = final.to_ndarray(format="rgb24")
        order = [int(i) for i in indices]
    shapes = {kept[i].shape for i in kept}
    if len(shapes) > 1:
        raise UnreadableVideo(path, f"frame size changes mid-stream ({sorted(shapes)})")
    return np.stack([kept[i] for i in order]), meta
