"""Video files (.mp4 .avi .mov .mkv .webm .gif …) decoded with PyAV."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import av
import numpy as np

from medsora.data.sources.downscale import check_pixels, target_size
from medsora.data.sources.formats import UnreadableVideo

__all__ = ["read_video_file", "probe_video_file", "count_video_frames"]

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


def probe_video_file(path: Path, max_pixels: int | None = None) -> dict:
    """Header facts and one decoded frame (catches files whose header is fine but data is not).

    Frames over ``max_pixels`` are refused from the header, before anything is decoded.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        meta = _stream_meta(stream)
        check_pixels(path, meta["height"], meta["width"], max_pixels)
        try:
            next(container.decode(stream))
        except StopIteration:
            raise UnreadableVideo(path, "no decodable frames") from None
        except _AV_ERRORS as err:
            raise UnreadableVideo(path, f"first frame does not decode: {err}") from None
        return meta
    finally:
        container.close()


def count_video_frames(path: Path) -> int:
    """Frames of a video whose header does not record them, counted from its packets (no decoding)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except _AV_ERRORS as err:
        raise UnreadableVideo(path, f"cannot count frames: {err}") from None
    finally:
        container.close()


def _rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """A decoded frame as uint8 H×W×3, scaled by libswscale (area averaging) when ``size`` is given."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=size[1], height=size[0], format="rgb24", interpolation="AREA").to_ndarray()


def read_video_file(path: Path, indices: Sequence[int] | None = None, short_side: int | None = None,
                    max_pixels: int | None = None) -> tuple[np.ndarray, dict]:
    """Decode a video file to RGB frames.

    Decoding is sequential and stops after the last requested frame, so a clip
    near the start of a long video costs only the frames up to it.

    Args:
        path: the video file.
        indices: frame indices to return, in order (repeats allowed); ``None`` = all.
        short_side: scale each frame as it is decoded (libswscale, area averaging) so that its
            short side is at most this; only the small frames are ever kept.
        max_pixels: refuse (from the header) frames of more pixels (``data.max_frame_pixels``).
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
        check_pixels(path, meta["height"], meta["width"], max_pixels)
        size = target_size(meta["height"], meta["width"], short_side)
        wanted = None if indices is None else set(int(i) for i in indices)
        last = None if wanted is None else max(wanted)
        kept: dict[int, np.ndarray] = {}
        count, final = 0, None
        try:
            for count, frame in enumerate(container.decode(stream), start=1):
                index, final = count - 1, frame
                if size is not None and (frame.height, frame.width) != (meta["height"], meta["width"]):
                    raise UnreadableVideo(path, f"frame size changes mid-stream ({frame.width}×{frame.height} at "
                                                f"frame {index}, {meta['width']}×{meta['height']} in the header)")
                if wanted is None or index in wanted:
                    kept[index] = _rgb(frame, size)
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
            kept[count] = _rgb(final, size)
        order = [int(i) for i in indices]
    shapes = {kept[i].shape for i in kept}
    if len(shapes) > 1:
        raise UnreadableVideo(path, f"frame size changes mid-stream ({sorted(shapes)})")
    return np.stack([kept[i] for i in order]), meta
