"""Feature spaces of the memorisation audit; every feature is a unit vector, compared by Euclidean distance.

* :class:`PixelFeatures` (weight-free, always available): ``frames`` frames evenly spaced
  over the clip, short side resized to ``size`` and centre-cropped (antialiased, so a
  shift of a few pixels or re-encoding noise barely moves it), grey-level, minus the
  clip's mean, over its norm: a contrast- and brightness-invariant thumbnail.
* :class:`VAEFeatures`: the project's own VAE posterior mean of the clip (the cache's
  stored latents for an encode cache's clips), average-pooled to a ``grid×grid`` map per
  latent frame (a shift of a few pixels then moves it little), centred and normalised.
* :class:`EncoderFeatures`: a local self-supervised encoder from a transformers folder —
  a VideoMAE (the clip as a whole) or an image model (DINO, CLIP's vision tower…, its
  pooled output averaged over the clip's frames).
"""
from __future__ import annotations

import abc
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from medsora.data.transforms import preprocess_frames

__all__ = ["EncoderFeatures", "FeatureBackend", "PixelFeatures", "VAEFeatures", "build_backend", "unit_rows"]


def unit_rows(x: torch.Tensor) -> np.ndarray:
    """Rows centred and scaled to unit norm (float32 numpy)."""
    x = x.double().flatten(1)
    x = x - x.mean(1, keepdim=True)
    return F.normalize(x, dim=1).float().numpy()


def _even(frames: np.ndarray, count: int) -> np.ndarray:
    return frames[np.linspace(0, frames.shape[0] - 1, count).round().astype(int)]


class FeatureBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def identity(self) -> dict:
        """What determines the features (cached features are reused only for the same identity)."""

    @abc.abstractmethod
    def extract(self, clips: list[np.ndarray]) -> np.ndarray:
        """uint8 clips (T×H×W×3 each) -> B×D unit rows."""

    def cached(self, ref) -> np.ndarray | None:
        """The feature of a clip known without reading it (an encode cache's latents), else None."""
        return None


class PixelFeatures(FeatureBackend):
    name = "pixels"

    def __init__(self, frames: int = 8, size: int = 16) -> None:
        self.frames, self.size = frames, size

    def identity(self) -> dict:
        return {"backend": self.name, "frames": self.frames, "size": self.size, "version": 1}

    def extract(self, clips: list[np.ndarray]) -> np.ndarray:
        rows = [preprocess_frames(_even(c, self.frames), self.size).mean(0) for c in clips]  # grey F×S×S
        return unit_rows(torch.stack(rows))


class VAEFeatures(FeatureBackend):
    """Posterior means of the project's VAE (``load_vae``) on clips of ``frames`` (1 + 4k) frames at ``size``."""

    name = "vae"

    def __init__(self, ckpt: str | Path, frames: int = 17, size: int = 64, cache_root: Path | None = None,
                 device: str = "cpu", grid: int = 4) -> None:
        from medsora.flow.raft_weights import file_sha256
        from medsora.vae import load_vae

        self.ckpt = Path(ckpt)
        self.vae, _ = load_vae(self.ckpt)
        self.vae.to(device)
        self.sha = file_sha256(self.ckpt)
        self.frames, self.size, self.device, self.grid = frames, size, device, grid
        self.cache_root = cache_root
        if cache_root is not None:
            from medsora.data.cache import read_manifest

            stored = read_manifest(cache_root)["fingerprint"].get("vae", {}).get("ckpt_sha256")
            if stored is not None and stored != self.sha:
                raise ValueError(f"--vae {self.ckpt} is not the VAE that made the cache {cache_root} (SHA-256 "
                                 f"differs): the latents would not be comparable; pass the cache's VAE")
        self._shards: dict = {}

    def identity(self) -> dict:
        return {"backend": self.name, "vae_sha256": self.sha, "frames": self.frames, "size": self.size,
                "grid": self.grid}

    def _pool(self, latents: torch.Tensor) -> np.ndarray:
        """B×C×T×h×w latent means -> unit rows of the B×C×T×grid×grid average-pooled map."""
        return unit_rows(F.adaptive_avg_pool3d(latents.float(), (latents.shape[2], self.grid, self.grid)))

    @torch.no_grad()
    def extract(self, clips: list[np.ndarray]) -> np.ndarray:
        video = torch.stack([preprocess_frames(_even(c, self.frames), self.size) for c in clips]).to(self.device)
        return self._pool(self.vae.encode(video).mean.float().cpu())

    def cached(self, ref) -> np.ndarray | None:
        if self.cache_root is None or ref.cache_item is None:
            return None
        from medsora.data.cache import CacheDataset

        split, index = ref.cache_item
        if split not in self._shards:
            self._shards[split] = CacheDataset(self.cache_root, split)
        return self._pool(self._shards[split][index]["latent_mean"][None])[0]


class EncoderFeatures(FeatureBackend):
    """A local transformers folder: VideoMAE (clip features) or an image encoder (frame features averaged)."""

    name = "encoder"

    def __init__(self, folder: str | Path, frames: int = 8, device: str = "cpu") -> None:
        from transformers import AutoConfig

        self.folder = Path(folder)
        if not (self.folder / "config.json").is_file():
            raise FileNotFoundError(f"--encoder {self.folder}: no config.json (a transformers model folder)")
        config = AutoConfig.from_pretrained(self.folder)
        self.device, self.frames = device, frames
        digest = hashlib.sha256()
        for f in sorted(self.folder.iterdir()):
            if f.is_file():
                digest.update(f.name.encode() + str(f.stat().st_size).encode())
        self.fingerprint = digest.hexdigest()[:16]
        if config.model_type == "videomae":
            from medsora.metrics.cd_fvd import load_videomae

            self.video = load_videomae(self.folder, device)
            self.image = None
        else:
            from transformers import AutoModel

            model = AutoModel.from_pretrained(self.folder)
            self.image = (getattr(model, "vision_model", None) or model).eval().to(device)
            self.video = None
            vision = getattr(config, "vision_config", config)
            self.image_size = int(getattr(vision, "image_size", 224))

    def identity(self) -> dict:
        return {"backend": self.name, "folder": str(self.folder.resolve()), "files": self.fingerprint,
                "frames": self.frames}

    @torch.no_grad()
    def extract(self, clips: list[np.ndarray]) -> np.ndarray:
        if self.video is not None:
            n = self.video.num_frames
            batch = torch.stack([torch.from_numpy(np.ascontiguousarray(_even(c, n))).permute(3, 0, 1, 2)
                                 for c in clips]).to(self.device)
            return unit_rows(self.video(batch).cpu())
        rows = []
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        for clip in clips:
            frames = (preprocess_frames(_even(clip, self.frames), self.image_size).permute(1, 0, 2, 3) + 1) / 2
            out = self.image(pixel_values=((frames - mean) / std).to(self.device))
            pooled = out.pooler_output if getattr(out, "pooler_output", None) is not None else \
                out.last_hidden_state[:, 0]
            rows.append(pooled.float().mean(0).cpu())
        return unit_rows(torch.stack(rows))


def build_backend(kind: str, *, vae: str | None = None, encoder: str | None = None, clip_frames: int = 17,
                  clip_size: int = 64, cache_root: Path | None = None, device: str = "cpu") -> FeatureBackend:
    """``pixels``, ``vae`` (needs ``vae``) or ``encoder`` (needs ``encoder``); ``auto``: the encoder when given,
    else the VAE when given, else pixels."""
    if kind == "auto":
        kind = "encoder" if encoder else "vae" if vae else "pixels"
    if kind == "pixels":
        return PixelFeatures()
    if kind == "vae":
        if not vae:
            raise ValueError("--features vae needs --vae CKPT (the project's VAE checkpoint; for an encode cache, "
                             "the one that made it)")
        return VAEFeatures(vae, clip_frames, clip_size, cache_root, device)
    if kind == "encoder":
        if not encoder:
            raise ValueError("--features encoder needs --encoder FOLDER (a local transformers model folder)")
        return EncoderFeatures(encoder, device=device)
    raise ValueError(f"--features {kind}: choose auto, pixels, vae or encoder")
