"""Schema of ``data:`` — sources, preprocessing, clip sampling, loading."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from medsora.config.fields import choice


@dataclass
class DataConfig:
    root: str = "???"  # folder of videos/frames/DICOM/NIfTI, or "demo" for the embedded set
    # CSV or JSONL (path, caption, modality, split, extra columns = metadata), relative to root;
    # None: root/manifest.jsonl or root/manifest.csv when present, else every source under root
    # with modality = parent folder name
    manifest: Optional[str] = None
    cache: Optional[str] = None  # encode cache (latents + flow targets) written by medsora.encode
    size: int = 64  # short side resized to this, then cropped to size×size
    crop: str = choice("center", "center", "random")  # "random" applies to training only
    num_frames: int = 17
    frame_stride: int = 1  # fixed interval between sampled frames (when adaptive_interval is off)
    adaptive_interval: bool = False  # Bora: smallest stride whose mean |Δframe| exceeds threshold_k
    threshold_k: float = 0.02  # mean absolute inter-frame difference, intensities in [0, 1]
    max_stride: int = 8  # largest interval the adaptive rule may pick
    short_videos: str = choice("pad", "pad", "skip")  # fewer frames than a clip needs
    # clips per video and epoch: an integer, or "all" = every window of a clip's span (at most
    # length // span, at least 1); training draws each clip at random within its window, encode and
    # validation take evenly spaced fixed clips
    clips_per_video: Any = 1
    max_frame_pixels: int = 100_000_000  # sources with larger frames are refused (decoding would need GBs)
    nifti_axis: int = 2  # slice axis (RAS+) for 3D volumes and 4D series
    nifti_slice: Optional[int] = None  # slice shown for 4D NIfTI; None = middle
    intensity_percentiles: List[float] = field(default_factory=lambda: [0.5, 99.5])  # robust 8-bit scaling
    val_fraction: float = 0.1  # share of videos without a manifest split that go to validation (path hash)
    batch_size: int = 2
    num_workers: Optional[int] = None  # DataLoader workers; None = the CPUs this process may use (at most 8)
    max_bad_fraction: float = 0.05  # more unreadable files than this share stops start-up
    probe_files: int = 2000  # headers checked at start-up (a seeded sample on larger sets); -1 = all
    demo_clips: int = 100
    demo_seed: int = 0
