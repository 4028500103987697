"""Writers of small real media files (PyAV, pydicom, nibabel, Pillow) for the data tests."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def pattern_frames(count: int, height: int, width: int) -> np.ndarray:
    """uint8 T×H×W×3 smooth colour patterns, shifted per frame (order and colour are checkable,
    and lossy codecs keep them close)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(count):
        channels = [110 + 80 * np.sin((x + 3 * t) / 6 + c) * np.cos((y - 2 * t) / 8 + 0.5 * c) for c in range(3)]
        frames.append(np.stack(channels, -1))
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


class Media:
    """Helpers that write real files in the formats the readers support."""

    pattern = staticmethod(pattern_frames)

    @staticmethod
    def video(path: Path, frames: np.ndarray, codec: str = "libx264rgb", pix_fmt: str = "rgb24", fps: int = 8,
              options: dict | None = None, container_options: dict | None = None) -> Path:
        options = {"qp": "0"} if options is None and codec == "libx264rgb" else (options or {})
        with av.open(str(path), mode="w", options=container_options or {}) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            stream.options = options
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path

    @staticmethod
    def dicom(path: Path, pixels: np.ndarray, photometric: str, bits_stored: int, **tags) -> Path:
        """Write pixels (frames×rows×cols[×3] or rows×cols[×3]) as an uncompressed DICOM file."""
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.SeriesInstanceUID = tags.pop("SeriesInstanceUID", generate_uid())
        ds.Modality = tags.pop("Modality", "OT")
        ds.set_pixel_data(pixels, photometric, bits_stored)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(path, enforce_file_format=True)
        return path

    @staticmethod
    def read_dicom(path: Path) -> Dataset:
        return pydicom.dcmread(path)


@pytest.fixture
def media() -> type[Media]:
    return Media
