"""Write a trained run as a diffusers-style folder (``python -m medsora.export``).

Layout (diffusion run)::

    model_index.json                      the pipeline class and its components
    transformer/config.json + diffusion_pytorch_model.safetensors
    vae/config.json + diffusion_pytorch_model.safetensors       (with the latent scale)
    scheduler/scheduler_config.json       the run's objective and default sampler
    condition_encoder/…                   modality/text (and attribute) embeddings; T5 by path only
    sampling.json                         the training clips' frame rate (``medsora.sample``'s default)
    README.md                             model card

A VAE-stage checkpoint exports ``vae/`` and the card. The folder is written beside the target and
renamed into place, so an interrupted export leaves no half-written model.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

__all__ = ["ExportError", "export_checkpoint"]


class ExportError(ValueError):
    """A user-fixable export problem (names the file and the fix)."""


def _prepare_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"--out {out} is not empty: choose a new folder or pass --force to replace it")


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


_COVERAGE_KEYS = ("chunk_frames", "tile_size", "tile_overlap")


def _vae_component(vae, scaling_factor: float, vae_section: dict):
    from medsora.export.components import MedSoraVAE

    if vae_section.get("kind") == "sd":
        raise ExportError("vae=sd (a frame-wise AutoencoderKL) has no exported component yet; the export folder "
                          "holds the causal VAE only: sample with python -m medsora.sample --ckpt instead")
    base = {k: v for k, v in vae.base.config.items() if not k.startswith("_")}
    # The network is described by the settings the VAE was built with (its checkpoint's), not by the
    # diffusion run's vae section, which may differ (e.g. vae.shortcut, vae.freq_comp); only how the
    # exported VAE covers long or large videos is the run's.
    settings = dataclasses.asdict(vae.config)
    settings.update({k: vae_section[k] for k in _COVERAGE_KEYS if k in vae_section})
    part = MedSoraVAE(base_config=base, settings=settings, scaling_factor=float(scaling_factor))
    part.vae.load_state_dict(vae.state_dict(), strict=True)
    return part.eval()


def _diffusion_parts(ckpt_path: Path, ckpt: dict, ema: bool, vae_path: Optional[str]):
    from diffusers import DiffusionPipeline  # noqa: F401  (fail early if diffusers is broken)

    from medsora.diffusion import sampling_scheduler
    from medsora.export.components import MedSoraConditionEncoder, MedSoraTransformer, inference_run_config
    from medsora.training.diffusion_module import DiffusionModule

    overrides = {"vae": {"ckpt": str(Path(vae_path).expanduser().resolve())}} if vae_path else None
    module = DiffusionModule.from_checkpoint(str(ckpt_path), overrides=overrides)
    used_ema = ema and "current_model_state" in ckpt
    if not ema and "current_model_state" in ckpt:
        module.load_state_dict(ckpt["current_model_state"])
    if not module.can_decode:
        raise ExportError(f"{ckpt_path}: the run has no VAE checkpoint (vae.ckpt): pass --vae PATH to export one")
    cfg = OmegaConf.to_container(module.cfg, resolve=True)
    run = inference_run_config(cfg)
    transformer = MedSoraTransformer(run=run, latent_grid=list(module.latent_grid()))
    own = {k: v for k, v in module.backbone.state_dict().items() if not k.startswith("projector.")}
    transformer.backbone.load_state_dict(own, strict=True)
    vae = _vae_component(module._vae.module, module.scaling_factor, cfg["vae"])
    cond = None
    if module.cond_encoder is not None:
        cond = MedSoraConditionEncoder(cond=run["cond"], hidden=int(cfg["model"]["hidden"]),
                                       modalities=list(module.modalities), text_encoder_path=cfg["cond"].get("text_encoder"))
        cond.encoder.load_state_dict(module.cond_encoder.state_dict(), strict=True)
    # the flow-matching time shift of the clip size the model was trained on, as sampling uses it
    scheduler = sampling_scheduler(module.cfg.diffusion, bool(module.cfg.model.learn_sigma), module.cfg.diffusion.sampler,
                                   grid=module.latent_grid())
    return cfg, used_ema, transformer.eval(), vae, scheduler, (cond.eval() if cond is not None else None)


def export_checkpoint(ckpt_path: str | os.PathLike, out: str | os.PathLike, *, ema: bool = True, force: bool = False,
                      eval_json: Optional[str] = None, vae: Optional[str] = None) -> Path:
    """Export a Lightning checkpoint (diffusion or VAE stage) to the folder ``out``.

    Args:
        ema: export the EMA weights (the run's ``state_dict``); ``False`` takes the raw weights.
        force: replace a non-empty ``out``.
        eval_json: an evaluation JSON (``python -m medsora.evaluate``) whose metrics go into the card.
        vae: the VAE checkpoint when the run's ``vae.ckpt`` moved.
    Returns:
        the folder written.
    """
    from medsora.export.model_card import model_card
    from medsora.training.checkpointing import load_checkpoint
    from medsora.training.vae_module import CHECKPOINT_KEY

    ckpt_path, out = Path(ckpt_path).expanduser(), Path(out).expanduser()
    _prepare_target(out, force)
    evaluation = None
    if eval_json:
        try:
            evaluation = json.loads(Path(eval_json).expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ExportError(f"--eval {eval_json}: not a readable evaluation JSON ({err})") from None
    ckpt = load_checkpoint(ckpt_path)
    step = ckpt.get("global_step")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if CHECKPOINT_KEY in ckpt:
            from medsora.vae import load_vae

            meta = ckpt[CHECKPOINT_KEY]
            model, factor = load_vae(ckpt_path)
            _vae_component(model, factor, meta["vae"]).save_pretrained(tmp / "vae")
            run, stage, used_ema, components = {"vae": meta["vae"], "data": {}}, "vae", "current_model_state" in ckpt, ["vae"]
            hp = (ckpt.get("hyper_parameters") or {}).get("cfg") or {}
            run["data"] = hp.get("data", {})
        else:
            hp = (ckpt.get("hyper_parameters") or {}).get("cfg") or {}
            if hp.get("stage") != "diffusion":
                raise ExportError(f"{ckpt_path}: neither a diffusion nor a VAE checkpoint of MedSora "
                                  f"(stage: {hp.get('stage', 'unknown')})")
            from medsora.pipeline import MedSoraPipeline

            run, used_ema, transformer, vae_part, scheduler, cond = _diffusion_parts(ckpt_path, ckpt, ema, vae)
            MedSoraPipeline(transformer=transformer, vae=vae_part, scheduler=scheduler,
                            condition_encoder=cond).save_pretrained(tmp, safe_serialization=True)
            stage = "diffusion"
            components = ["transformer", "vae", "scheduler"] + (["condition_encoder"] if cond is not None else [])
            # the training clips' frame rate (recorded by the data module): what medsora.sample writes at
            fps = (ckpt.get("VideoDataModule") or {}).get("fps")
            (tmp / "sampling.json").write_text(json.dumps({"fps": fps}), encoding="utf-8")
        (tmp / "README.md").write_text(
            model_card(source=str(ckpt_path), stage=stage, step=step, ema=used_ema and ema, run=run,
                       components=components, evaluation=evaluation, eval_path=eval_json), encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
