"""Schema of ``data:`` — sources, preprocessing, clip sampling, loading."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional

from medsora.config.fields import bounded, choice


@dataclass
class DataConfig:
    root: str = "???"  # folder of videos/frames/DICOM/NIfTI, or "demo" for the embedded set
    # CSV or JSONL (path, caption, modality, split, extra columns = metadata), relative to root;
    # None: root/manifest.jsonl or root/manifest.csv when present, else every source under root
    # with modality = parent folder name
    manifest: Optional[str] = None
    cache: Optional[str] = None  # encode cache (latents + flow targets) written by medsora.encode
    size: int = bounded(64, 8, 8192)  # short side resized to this, then cropped to size×size
    crop: str = choice("center", "center", "random")  # "random" applies to training only
    # training clips as random train_crop×train_crop windows of the size×size clip (the same window in
    # every frame); validation and encoding keep full frames. 0 = off. For the VAE stage: a
    # convolutional VAE trained on crops reconstructs full frames, at a fraction of the cost per step
    train_crop: int = bounded(0, 0, 8192)
    num_frames: int = bounded(17, 1, 4097)  # 1 + 4k with the causal VAE (4x temporal compression); any with vae=sd
    frame_stride: int = bounded(1, 1, 1000)  # fixed interval between sampled frames (when adaptive_interval is off)
    adaptive_interval: bool = False  # Bora: smallest stride whose mean |Δframe| exceeds threshold_k
    threshold_k: float = bounded(0.02, 0.0, 1.0)  # mean absolute inter-frame difference, intensities in [0, 1]
    max_stride: int = bounded(8, 1, 1000)  # largest interval the adaptive rule may pick
    # Bora's modality balancing of each training epoch (medsora.data.balance): "modality" draws every
    # modality equally often (stage 1), "smallest" down-samples every modality to the smallest (stage 2)
    balance: str = choice("none", "none", "modality", "smallest")
    short_videos: str = choice("pad", "pad", "skip")  # fewer frames than a clip needs
    # clips per video and epoch: an integer, or "all" = every window of a clip's span (at most
    # length // span, at least 1); training draws each clip at random within its window, encode and
    # validation take evenly spaced fixed clips
    clips_per_video: Any = 1
    max_frame_pixels: int = bounded(100_000_000, 1)  # sources with larger frames are refused (decoding would need GBs)
    nifti_axis: int = bounded(2, 0, 2)  # slice axis (RAS+) for 3D volumes and 4D series
    nifti_slice: Optional[int] = None  # slice shown for 4D NIfTI; None = middle
    intensity_percentiles: List[float] = field(default_factory=lambda: [0.5, 99.5])  # robust 8-bit scaling
    val_fraction: float = bounded(0.1, 0.0, 0.9)  # share of videos without a manifest split that go to validation (path hash)
    batch_size: int = bounded(2, 1, 65536)
    num_workers: Optional[int] = bounded(None, 0, 1024)  # DataLoader workers; None = the CPUs this process may use (at most 8)
    max_bad_fraction: float = bounded(0.05, 0.0, 1.0)  # more unreadable files than this share stops start-up
    probe_files: int = bounded(2000, 0, also=(-1,))  # headers checked at start-up (a seeded sample on larger sets); -1 = all
    demo_clips: int = bounded(100, 1, 100000)
    demo_seed: int = 0

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """Rules between fields (bounds and choices are in the field definitions)."""
        if c.size % 8:
            yield "size", "must be a multiple of 8 (the VAE downsamples 8x)"
        if c.train_crop and (c.train_crop % 8 or c.train_crop > c.size):
            yield "train_crop", f"must be 0 (off) or a multiple of 8 no larger than data.size = {c.size}"
        from medsora.data.clips import parse_clips_per_video  # lazy: clips imports torch

        try:
            parse_clips_per_video(c.clips_per_video)
        except ValueError:
            yield "clips_per_video", "must be a whole number >= 1 or 'all'"
        lo_hi = list(c.intensity_percentiles)
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] < lo_hi[1] <= 100:
            yield "intensity_percentiles", "must be [low, high] with 0 <= low < high <= 100"
