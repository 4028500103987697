"""Schema of ``data:`` — sources, preprocessing, clip sampling, loading."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medsora.schema_fields import choice


@dataclass
class DataConfig:
    root: str = "???"  # folder of videos/frames/DICOM/NIfTI, or "demo" for the embedded set
    manifest: Optional[str] = None  # CSV or JSONL inside root: path, caption, modality, split
    cache: Optional[str] = None  # encode cache (latents + flow targets) written by medsora.encode
    size: int = 64  # short side resized to this, then cropped to size×size
    crop: str = choice("center", "center", "random")
    num_frames: int = 17
    frame_stride: int = 1
    adaptive_interval: bool = False  # Bora: smallest stride whose mean |Δframe| exceeds threshold_k
    threshold_k: float = 0.02
    max_stride: int = 8
    short_videos: str = choice("pad", "pad", "skip")
    nifti_axis: int = 2  # slice axis for 3D volumes
    val_fraction: float = 0.1
    batch_size: int = 2
    num_workers: int = 0
    max_bad_fraction: float = 0.05
    demo_clips: int = 100
    demo_seed: int = 0
