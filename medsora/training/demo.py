"""The CPU demo: ``vae_demo`` -> encode cache -> ``diffusion_demo`` -> samples and a realism check.

What ``python -m medsora.fit`` runs with no arguments (:mod:`medsora.fit` is its command line).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Sequence

import lightning as L

from medsora.config import compose
from medsora.training.stage import fit_stage

__all__ = ["run_demo", "demo_realism", "data_overrides"]


def _demo_cache_dir(vae_ckpt: Path) -> Path:
    from medsora.flow.raft_weights import file_sha256

    root = Path(os.environ.get("MEDSORA_CACHE", "~/.cache/medsora")).expanduser()
    return root / "encode" / f"demo-{file_sha256(vae_ckpt)[:12]}"


def data_overrides(data_cfg) -> list[str]:
    """``data.KEY=VALUE`` overrides that make another stage read the same clips.

    The keys that decide which clips exist (those an encode cache records, but ``crop``) are
    copied; loading settings (batch size, workers, crop augmentation) stay the stage's own.
    """
    import json

    from omegaconf import OmegaConf

    from medsora.data.cache import DATA_KEYS, DEMO_KEYS

    def fmt(value) -> str:
        if isinstance(value, str):
            return json.dumps(value)  # quoted: YAML would read off/yes/1e3 as other types
        return json.dumps(value).replace(" ", "")

    shared = [k for k in (*DATA_KEYS, *DEMO_KEYS) if k != "crop"]
    values = OmegaConf.to_container(data_cfg, resolve=True)
    return [f"data.{k}={fmt(values[k])}" for k in shared]


def run_demo(overrides: Sequence[str] = (), out_dir: Optional[str] = None,
             vae_overrides: Sequence[str] = (), diffusion_overrides: Sequence[str] = ()) -> dict:
    """The demo: ``vae_demo`` -> encode cache -> ``diffusion_demo`` -> samples, in one process.

    Both stages use the ``data:`` section of experiment ``demo`` (so the VAE, the cache and the
    diffusion model see the same clips); ``overrides`` (``key=value``) apply to both stages, e.g.
    ``trainer.max_steps=20`` for a quick check, ``vae_overrides``/``diffusion_overrides`` to one.
    Returns the stage results, the realism check and the wall time.
    """
    began = time.perf_counter()
    extra = [o for o in overrides if not o.startswith(("experiment=", "stage="))]
    if out_dir:
        extra.append(f"out_dir={out_dir}")
    extra = [*data_overrides(compose("demo", extra).data), *extra]
    print("MedSora demo: 1/4 train the tiny VAE (experiment vae_demo)", flush=True)
    vae_cfg = compose("vae_demo", [*extra, *vae_overrides])
    vae = fit_stage(vae_cfg)
    if vae.last_ckpt is None:
        raise RuntimeError(f"the VAE stage wrote no checkpoint under {vae.log_dir}")

    print("MedSora demo: 2/4 encode latents and flow targets (medsora.encode)", flush=True)
    cache = _demo_cache_dir(vae.last_ckpt)
    cfg = compose("diffusion_demo", [*extra, *diffusion_overrides, f"vae.ckpt={vae.last_ckpt.resolve()}",
                                     f"data.cache={cache}"])
    enc_seconds = _encode(cfg, vae.last_ckpt)

    print("MedSora demo: 3/4 train the tiny diffusion model with OFRA (experiment diffusion_demo)", flush=True)
    diff = fit_stage(cfg)
    print("MedSora demo: 4/4 samples from the EMA weights, compared with the real clips of each modality", flush=True)
    realism = demo_realism(cfg, diff.last_ckpt)
    total = time.perf_counter() - began
    summary = {"vae": vae, "encode_seconds": enc_seconds, "cache": cache, "diffusion": diff, "seconds": total,
               "realism": realism}
    print(_demo_summary(summary), flush=True)
    return summary


def demo_realism(cfg, ckpt: Path, num: int = 8, seed: int = 0) -> dict:
    """Colour/motion histogram distances (``medsora.training.demo_stats``) of samples to the real clips of
    their modality, for the trained model and for the same model untrained.

    ``"reconstruction"`` scores the VAE's reconstructions of the real clips themselves: the best a
    model generating through this VAE can reach. Returns ``{"trained", "untrained",
    "reconstruction"}``, each ``modality_distances``; lower is closer, 0 = identical histograms.
    """
    import torch

    from medsora.training.demo_stats import modality_distances, modality_references
    from medsora.encode import clip_datasets
    from medsora.training.diffusion_module import DiffusionModule

    real, labels = [], []
    for dataset in clip_datasets(cfg.data, ["train", "val"]).values():
        for i in range(len(dataset)):
            item = dataset[i]
            real.append(torch.as_tensor(item["video"]))
            labels.append(item["modality"])
    real = torch.stack(real)
    references = modality_references(real, labels)
    trained = DiffusionModule.from_checkpoint(str(ckpt))
    vae = trained._vae.on("cpu")
    with torch.no_grad():
        recon = torch.cat([vae.decode(vae.encode(chunk).mean).clamp(-1, 1) for chunk in real.split(16)])
    L.seed_everything(int(cfg.seed), verbose=False)
    untrained = DiffusionModule(trained.cfg, trained.modalities, for_training=False).eval()
    out = {"reconstruction": modality_distances(recon, labels, references)}
    for name, module in (("trained", trained), ("untrained", untrained)):
        videos, names = module.generate(num, seed=seed, return_labels=True)
        if names is None:  # an unconditional model: compare with the modality each sample is closest to
            names = [min(references, key=lambda m: modality_distances(v[None], [m], references)["colour"])
                     for v in videos]
        out[name] = modality_distances(videos, names, references)
    return out


def _encode(cfg, vae_ckpt: Path) -> float:
    from medsora.encode import encode_cache
    from medsora.flow import FlowTeacher
    from medsora.flow.raft_weights import file_sha256
    from medsora.vae import load_vae

    began = time.perf_counter()
    vae, factor = load_vae(str(vae_ckpt))
    teacher = FlowTeacher.from_config(cfg.align)
    encode_cache(cfg, vae, factor, teacher, file_sha256(vae_ckpt), shard_size=64, progress=True)
    return time.perf_counter() - began


def _demo_summary(s: dict) -> str:
    vae, diff = s["vae"], s["diffusion"]
    lines = [
        "",
        f"MedSora demo finished in {s['seconds'] / 60:.1f} min",
        f"  VAE            {vae.log_dir}  ({vae.seconds:.0f} s)  checkpoint {vae.last_ckpt}",
        f"  encode cache   {s['cache']}  ({s['encode_seconds']:.0f} s)",
        f"  diffusion      {diff.log_dir}  ({diff.seconds:.0f} s)  checkpoint {diff.last_ckpt}",
    ]
    if diff.samples is not None:
        lines.append(f"  samples        {diff.samples}  (mp4 + gif per video, contact_sheet.png)")
    r = s.get("realism")
    if r:
        lines.append(f"  realism        colour-histogram distance to real clips of the same modality "
                     f"{r['trained']['colour']:.3f} (untrained model {r['untrained']['colour']:.3f}; other modalities "
                     f"{r['trained']['colour_other']:.3f}); motion {r['trained']['motion']:.3f} "
                     f"(untrained {r['untrained']['motion']:.3f}); the VAE's own reconstructions "
                     f"{r['reconstruction']['colour']:.3f} — 0 = identical, 1 = disjoint")
    lines += [
        f"  TensorBoard    tensorboard --logdir {Path(vae.log_dir).parent.parent}",
        f"  more samples   python -m medsora.sample --ckpt {diff.last_ckpt} --num 8 --out samples/",
    ]
    return "\n".join(lines)
