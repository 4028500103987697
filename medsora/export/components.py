"""The exported model's parts as diffusers models: ``ModelMixin`` + ``ConfigMixin`` wrappers.

Each wrapper stores the *configuration sections* of the run that trained it (plain JSON in
``config.json``) and rebuilds its network with the same factory the training code uses
(:func:`medsora.training.model_factory.build_backbone`, :func:`medsora.vae.checkpoint.vae_from_meta`,
:func:`medsora.cond.build_condition_encoder`), so an exported folder and a Lightning checkpoint
always describe the same network. Weights are saved as safetensors only (``save_pretrained``'s
default); nothing in a folder is pickled.

Why wrappers rather than making ``MedSoraDiT``/``FreqCompVAE`` ``ModelMixin``s themselves: the plain
modules stay free of diffusers' loading machinery and of the JSON-config constraint on their
constructor arguments, and the state-dict keys gain one prefix (``backbone.``, ``vae.``,
``encoder.``) that :mod:`medsora.export.writer` maps from the Lightning checkpoint.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

__all__ = ["MedSoraTransformer", "MedSoraVAE", "MedSoraConditionEncoder", "inference_run_config"]

_INFERENCE_SECTIONS = ("model", "vae", "diffusion", "cond", "align", "data")


def inference_run_config(run: dict) -> dict:
    """The part of a run config that defines the trained networks and how to sample them.

    Training-only settings (optimiser, trainer, data paths, the flow teacher) are left out; the
    alignment projector is a training-time head and is not exported (``align.enabled: false``).
    """
    out = {k: copy.deepcopy(run[k]) for k in _INFERENCE_SECTIONS if k in run}
    if "align" in out:
        out["align"] = {"enabled": False}
    if "data" in out:  # the clip geometry the model was trained on, not where the data lives
        keep = ("size", "num_frames", "frame_stride", "channels", "fps")
        out["data"] = {k: v for k, v in out["data"].items() if k in keep}
    return out


def _run_config(run: dict):
    from medsora.training.diffusion_module import run_config

    return run_config(run)


class MedSoraTransformer(ModelMixin, ConfigMixin):
    """The diffusion backbone (``MedSoraDiT``) as a diffusers model.

    Args:
        run: the inference part of the run config (:func:`inference_run_config`).
        latent_grid: ``[T, h, w]`` of the latents the model was trained on.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, run: dict, latent_grid: Optional[list] = None):
        super().__init__()
        from medsora.training.model_factory import build_backbone

        self.backbone = build_backbone(_run_config(run))

    @property
    def in_channels(self) -> int:
        return int(self.backbone.in_channels)

    def forward(self, x: Tensor, t: Tensor, **cond: Any) -> Tensor:
        """``x: B×C×T×H×W``, ``t: B`` -> the backbone's prediction (see ``MedSoraDiT.forward``)."""
        return self.backbone(x, t, **cond)


class MedSoraVAE(ModelMixin, ConfigMixin):
    """The frequency-compensated causal VAE with its latent scale.

    Args:
        base_config: the diffusers ``AutoencoderKLCogVideoX`` config of the base.
        settings: the ``vae:`` config section (branch settings, chunking and tiling).
        scaling_factor: multiply latents by it before diffusion, divide before decoding.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, base_config: dict, settings: dict, scaling_factor: float):
        super().__init__()
        from medsora.vae.checkpoint import vae_from_meta

        self.vae = vae_from_meta({"base_config": base_config, "vae": settings})

    @property
    def latent_channels(self) -> int:
        return int(self.vae.latent_channels)

    def encode(self, video: Tensor):
        """``video: B×3×F×H×W`` in [-1, 1] -> posterior over unscaled latents ``B×C×T×h×w``."""
        return self.vae.encode(video)

    def decode(self, z: Tensor) -> Tensor:
        """Unscaled latents ``B×C×T×h×w`` -> video ``B×3×F×H×W``."""
        return self.vae.decode(z)


class MedSoraConditionEncoder(ModelMixin, ConfigMixin):
    """Modality, caption (and, when the run has them, attribute and context) conditioning.

    The frozen T5 is not part of the folder: ``text_encoder_path`` names it (the run's
    ``cond.text_encoder``); pass ``text_encoder_path=DIR`` to ``from_pretrained`` when it lives
    elsewhere on this machine.

    Args:
        cond: the ``cond:`` config section.
        hidden: the backbone's width.
        modalities: the modality class names, in embedding order.
        text_encoder_path: local T5 folder for text conditioning (None: no text).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, cond: dict, hidden: int, modalities: list, text_encoder_path: Optional[str] = None):
        super().__init__()
        from omegaconf import OmegaConf

        from medsora.cond import build_condition_encoder
        from medsora.cond.schema import CondConfig

        section = OmegaConf.merge(OmegaConf.structured(CondConfig), {**cond, "text_encoder": text_encoder_path})
        self.encoder = build_condition_encoder(section, int(hidden), list(modalities))
        if self.encoder is None:
            raise ValueError("the cond section conditions on nothing: an unconditional model has no condition_encoder")

    @property
    def modalities(self) -> list:
        return list(self.config.modalities)

    def forward(self, *args, **kwargs):
        return self.encoder(*args, **kwargs)

    def guidance_pair(self, *args, **kwargs):
        """(cond, uncond) :class:`~medsora.cond.Condition` pair, as ``ConditionEncoder.guidance_pair``."""
        return self.encoder.guidance_pair(*args, **kwargs)
