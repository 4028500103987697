"""Where each metric's pretrained network lives locally, and the errors when it does not.

Nothing is downloaded at run time. A weight is looked up, in order, at the path given
explicitly (a CLI flag such as ``--i3d``), under the weights folder (``--weights-dir``,
else ``$MEDSORA_WEIGHTS``, else ``$MEDSORA_CACHE/weights``) by its standard file name,
and for files the libraries cache themselves, in torch hub's checkpoint folder.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import torch

__all__ = ["WEIGHTS", "MetricUnavailable", "MissingPackage", "MissingWeights", "WeightSpec", "default_weights_dir",
           "require_package", "resolve_weights"]


class MetricUnavailable(RuntimeError):
    """A metric cannot run on this machine; the message says what is missing and how to get it."""


class MissingWeights(MetricUnavailable, FileNotFoundError):
    """A pretrained network's file or folder is not on disk."""


class MissingPackage(MetricUnavailable, ImportError):
    """An optional package a metric needs is not installed."""


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One pretrained network: its standard local name and how a user obtains it."""

    key: str
    name: str  # file name, or folder name when ``folder`` is set
    what: str
    obtain: str
    folder: bool = False
    hub_cached: bool = False  # the library keeps this file in torch hub's checkpoints folder


WEIGHTS: dict[str, WeightSpec] = {
    spec.key: spec
    for spec in (
        WeightSpec(
            "i3d", "i3d_torchscript.pt", "Kinetics-400 I3D TorchScript used by StyleGAN-V's FVD",
            "download https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt (the file StyleGAN-V's "
            "src/metrics/frechet_video_distance.py loads)",
        ),
        WeightSpec(
            "inception", "weights-inception-2015-12-05-6726825d.pth",
            "FID InceptionV3 (TensorFlow 2015-12-05 weights ported by torch-fidelity)",
            "download https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            hub_cached=True,
        ),
        WeightSpec(
            "videomae", "videomae-v2", "VideoMAE-v2 video encoder (CD-FVD), a transformers VideoMAE folder",
            "convert the ViT-g checkpoint that the cd-fvd package loads (vit_g_hybrid_pt_1200e_ssv2_ft.pth) to "
            "transformers' VideoMAE layout (config.json + model.safetensors; transformers ships "
            "convert_videomae_to_pytorch.py) or save any VideoMAE model with save_pretrained",
            folder=True,
        ),
        WeightSpec(
            "dino", "dino-vitb16", "DINO ViT-B/16 (VBench subject consistency), a transformers folder",
            "run `huggingface-cli download facebook/dino-vitb16 --local-dir <weights-dir>/dino-vitb16`",
            folder=True,
        ),
        WeightSpec(
            "clip", "clip-vit-base-patch32", "CLIP ViT-B/32 image tower (VBench background consistency), a "
            "transformers folder",
            "run `huggingface-cli download openai/clip-vit-base-patch32 --local-dir <weights-dir>/clip-vit-base-patch32`",
            folder=True,
        ),
        WeightSpec(
            "raft", "raft_large_C_T_V2-1bb1363a.pth", "RAFT-large trained on FlyingChairs+FlyingThings "
            "(torchvision Raft_Large_Weights.C_T_V2, the 'raft-things' model VBench uses)",
            "run `python -c \"import torchvision; torchvision.models.optical_flow.raft_large(weights='C_T_V2')\"` on "
            "a machine with internet and copy the file from ~/.cache/torch/hub/checkpoints",
            hub_cached=True,
        ),
        WeightSpec(
            "musiq", "musiq_spaq_ckpt-358bb6af.pth", "MUSIQ trained on SPAQ (VBench imaging quality, via pyiqa)",
            "download https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
            "musiq_spaq_ckpt-358bb6af.pth",
        ),
        WeightSpec(
            "lpips", "alexnet-owt-7be5be79.pth", "AlexNet ImageNet backbone of LPIPS (the LPIPS linear layers "
            "ship with torchmetrics)",
            "run `python -c \"import torchvision; torchvision.models.alexnet(weights='DEFAULT')\"` on a machine with "
            "internet and copy the file from ~/.cache/torch/hub/checkpoints",
            hub_cached=True,
        ),
    )
}


def default_weights_dir() -> Path:
    """``$MEDSORA_WEIGHTS`` or ``$MEDSORA_CACHE/weights`` (default ``~/.cache/medsora/weights``)."""
    env = os.environ.get("MEDSORA_WEIGHTS")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("MEDSORA_CACHE", "~/.cache/medsora")).expanduser() / "weights"


def resolve_weights(key: str, explicit: str | os.PathLike | None = None,
                    weights_dir: str | os.PathLike | None = None) -> Path:
    """Path of the weights ``key`` (a key of :data:`WEIGHTS`), or :class:`MissingWeights` naming
    every place looked at and how to obtain the file."""
    spec = WEIGHTS[key]
    flag = f"--{key}"
    if explicit is not None:
        candidates = [Path(explicit).expanduser()]
    else:
        candidates = [Path(weights_dir).expanduser() / spec.name if weights_dir else default_weights_dir() / spec.name]
        if spec.hub_cached:
            candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / spec.name)
    for path in candidates:
        if (path.is_dir() if spec.folder else path.is_file()):
            return path
    kind = "folder" if spec.folder else "file"
    tried = ", ".join(str(p) for p in candidates)
    raise MissingWeights(
        f"{spec.what}: {kind} '{spec.name}' not found (looked at: {tried}). To obtain it, {spec.obtain}; then put it "
        f"in the weights folder (--weights-dir or $MEDSORA_WEIGHTS) or pass {flag} PATH."
    )


def require_package(module: str, pip_name: str, purpose: str) -> None:
    """Raise :class:`MissingPackage` when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingPackage(f"{purpose} needs the '{pip_name}' package, which is not installed: "
                             f"run `pip install {pip_name}`.")
