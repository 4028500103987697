"""Evaluation protocols: how many videos, which frames, what resizing, which split and seed, pinned in a file.

FVD numbers differ between papers mostly because these choices differ (Latte issues 65
and 104, Endora issue 9). A protocol is a YAML file ``eval/<name>.yaml`` on the config search path (``--config-dir``,
``$MEDSORA_CONFIG_PATH``, then the shipped ``configs/eval/``), or a ``.yaml`` path, checked
against :class:`Protocol` at start-up (an unknown key or a bad value fails naming the key
and the file) and applied identically to the real and the generated set:

* ``num_videos`` per set, drawn with ``seed`` (``selection: random``) or the first in name
  order (``first``); an unreadable or too-short video is replaced by the next one drawn;
  fewer usable videos than asked is an error (``--allow-fewer`` labels the result instead);
* ``clip``: frames ``start, start+stride, …`` (``frames`` of them; shorter videos are
  discarded, as StyleGAN-V does), the short side resized to ``resize`` and the centre crop;
* ``sampling``: the sampler settings the generated set must have been made with, checked
  against the ``samples.json`` that ``python -m medsora.sample`` writes;
* ``bootstrap``: replicates, confidence and seed of the intervals.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch
import torchvision.transforms.v2.functional as TF
import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from medsora.config.fields import choice
from medsora.config.loader import ConfigError, find_config, list_configs

__all__ = ["BootstrapSpec", "ClipSpec", "Protocol", "SamplingSpec", "clip_video", "list_protocols", "load_protocol"]


@dataclasses.dataclass
class ClipSpec:
    frames: int = 16
    stride: int = 1
    start: int = 0
    resize: Optional[int] = None  # short side, pixels (null: native size)
    crop: str = choice("none", "none", "center")


@dataclasses.dataclass
class SamplingSpec:
    sampler: Optional[str] = None  # e.g. ddpm; null: not checked
    steps: Optional[int] = None
    ema: bool = True  # documented requirement (medsora.sample always uses the EMA weights when the run kept them)


@dataclasses.dataclass
class BootstrapSpec:
    replicates: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclasses.dataclass
class Protocol:
    name: str = MISSING
    description: str = ""
    num_videos: int = MISSING
    selection: str = choice("random", "random", "first")
    seed: int = 0
    real_split: Optional[str] = None  # a manifest split of --real (null: every video)
    metrics: list = dataclasses.field(default_factory=lambda: ["fvd"])
    clip: ClipSpec = dataclasses.field(default_factory=ClipSpec)
    sampling: SamplingSpec = dataclasses.field(default_factory=SamplingSpec)
    bootstrap: BootstrapSpec = dataclasses.field(default_factory=BootstrapSpec)


def list_protocols(root: Path | None = None) -> list[str]:
    """Protocol names along the config search path (``root``: that folder alone)."""
    return list_configs("eval", root)


def _resolve(name: str, root: Path | None) -> Path:
    return find_config("eval", name, "--protocol", root, file_hint="--protocol path/to/protocol.yaml")


def _check(p: Protocol, source: str, known_metrics) -> None:
    positive = {"num_videos": p.num_videos, "clip.frames": p.clip.frames, "clip.stride": p.clip.stride,
                "bootstrap.replicates": p.bootstrap.replicates + 1}
    if p.clip.resize is not None:
        positive["clip.resize"] = p.clip.resize
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{source}: '{key}' = {value} must be >= 1")
    if p.clip.start < 0:
        raise ConfigError(f"{source}: 'clip.start' = {p.clip.start} must be >= 0")
    if p.clip.crop == "center" and p.clip.resize is None:
        raise ConfigError(f"{source}: 'clip.crop' = center needs 'clip.resize' (the square's side)")
    if not 0 < p.bootstrap.confidence < 1:
        raise ConfigError(f"{source}: 'bootstrap.confidence' = {p.bootstrap.confidence} must be in (0, 1)")
    bad = [m for m in p.metrics if m not in known_metrics]
    if bad or not p.metrics:
        raise ConfigError(f"{source}: 'metrics' = {list(p.metrics)}: unknown {bad or 'empty list'}; choose from "
                          f"{', '.join(known_metrics)}")


def load_protocol(name: str, root: Path | None = None) -> Protocol:
    """The protocol ``eval/<name>.yaml`` of the config search path (or a YAML path), validated; raises
    :class:`ConfigError`."""
    from medsora.metrics.registry import METRICS

    path = _resolve(name, root)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Protocol), OmegaConf.create(tree))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{path}: invalid key '{key}': {str(err).splitlines()[0]}") from None
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{path}: required keys are not set: {', '.join(missing)}")
    protocol: Protocol = OmegaConf.to_object(cfg)
    for key, value, spec in (("selection", protocol.selection, Protocol), ("clip.crop", protocol.clip.crop, ClipSpec)):
        allowed = {f.name: f.metadata.get("choices") for f in dataclasses.fields(spec)}[key.split(".")[-1]]
        if value not in allowed:
            raise ConfigError(f"{path}: '{key}' = {value!r} is not one of {list(allowed)}")
    _check(protocol, str(path), METRICS)
    return protocol


def clip_video(video: torch.Tensor, clip: ClipSpec) -> torch.Tensor | None:
    """uint8 T×H×W×3 -> the protocol's clip (uint8 frames×h×w×3), or None when the video is too short."""
    frames = video[clip.start::clip.stride][: clip.frames]
    if frames.shape[0] < clip.frames:
        return None
    if clip.resize is None:
        return frames.contiguous()
    chw = TF.resize(frames.permute(0, 3, 1, 2), [clip.resize], antialias=True)
    if clip.crop == "center":
        chw = TF.center_crop(chw, [clip.resize, clip.resize])
    return chw.permute(0, 2, 3, 1).contiguous()
