"""Clinical control at demo scale on the CPU: heart-rate conditioning and image-to-video.

    python benchmarks/control.py [--vae VAE.ckpt | --vae-steps N] [--steps 3000] [--work DIR] [--ckpt DIFFUSION.ckpt]

Without ``--vae`` the control VAE is trained first: ``experiment=vae_demo`` with ``vae.shortcut=true``
(:mod:`medsora.vae.shortcut`: the latent cells' mean colour rides in three latent channels, so the
frame-mean brightness, which carries the pulsation, passes the VAE: gain transfer 0.67 and ρ 0.93 on its
reconstructions at 1000 steps; without it the demo VAE normalised that ~1 % cycle away, gain 0.04-0.17,
RESULTS.md), at 32 px with a constant learning rate for ``--vae-steps`` steps (resumed from
``WORK/runs/control_vae`` when it is there).

One diffusion model is trained (stage 1): ``experiment=attr_demo`` (modality + ultrasound heart rate in bpm) with
``cond.first_frame=true`` and ``cond.first_frame_dropout=0.5``, so the same weights generate from
nothing (heart-rate test) and from a given first frame (image-to-video test). To fit a shared 2-core
CPU in minutes the backbone is DiT blocks, ``model.blocks=[full_attn] model.mlp_ratio=4`` (attention + MLP),
with ``align=off`` (the control mechanisms under test are the condition encoder and the context channels, not
the block pattern), at 32 px (the size ``vae_demo`` trains at). The heart-rate test uses a second stage: those
weights trained on for ``--hr-steps`` (20000) on the demo's ultrasound clips alone (:func:`compose_hr_run`;
on all four modalities the rate was not learned, RESULTS.md "Clinical control, fifth run").

* **Heart-rate control**: 8 ultrasound clips at each requested rate (50, 80, 120 bpm); each clip's
  pulsation rate is measured from its pixels (the spectral peak, 30–180 bpm, of the frame-mean
  intensity with its mean removed, at the demo's 15 fps); Spearman ρ between requested and measured
  rates, conditioned (guidance 1, and guided on the heart rate alone at ``--guidance``, 3) and with the
  attribute dropped (its null embedding, same seeds). References: the same estimator on the real
  ultrasound clips (ρ against their manifest rate) and on the VAE's reconstructions of them. The VAE's
  *gain transfer* (:func:`gain_transfer`) says how much of a per-frame brightness cycle it passes at all:
  the pulsation is a ~1 % frame-mean cycle, so a VAE that normalises it away bounds every generated ρ.
* **Image-to-video**: for the held-out (val) demo clips, the generated clip from their first frame:
  PSNR/SSIM of its first frame against the given frame, beside the VAE's own reconstruction of that
  frame; the mean absolute frame-to-frame change of generated and real clips, and the jump after the
  first frame (|f1 − f0| over the mean change of the later frames; 1 = no jump, 0 = frozen start).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_info import append_results, describe_machine  # noqa: E402

RATES = (50, 80, 120)
FPS = 15.0  # the demo's ultrasound frame rate
BAND = np.linspace(30, 180, 301)  # bpm searched


def measured_rate(video: torch.Tensor, fps: float = FPS) -> float:
    """Pulsation rate (bpm) of a clip 3×F×H×W: spectral peak of the frame-mean intensity (mean removed).

    A plain DFT evaluated on a fine grid (zero-padding in effect): a 17-frame clip at 50 bpm holds less
    than one cycle, so removing a linear trend as well would erase the slow rates.
    """
    s = video.float().mean(dim=(0, 2, 3)).numpy().astype(np.float64)
    s = s - s.mean()
    t = np.arange(len(s))
    power = np.abs(np.exp(-2j * np.pi * (BAND / 60 / fps)[:, None] * t[None]) @ s) ** 2
    return float(BAND[int(np.argmax(power))])


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def gain_transfer(vae, video: torch.Tensor, fps: float = FPS, depth: float = 0.2) -> float:
    """How much of a per-frame brightness cycle the VAE passes: 1 = all of it, 0 = normalised away.

    Each real clip ``B×3×F×H×W`` is given a ±``depth`` gain cycle at 50–120 bpm (intensity in [0, 1]
    scaled per frame); the slope of the reconstruction's frame-mean change on the input's frame-mean
    change. A VAE whose normalisation takes statistics per frame is close to invariant to a frame's gain.
    """
    t = torch.arange(video.shape[2], dtype=torch.float32)
    rates = torch.tensor([RATES[i % len(RATES)] for i in range(len(video))], dtype=torch.float32)
    gain = 1 + depth * torch.sin(2 * np.pi * rates[:, None] / 60 / fps * t + torch.arange(len(video))[:, None])
    cycled = ((video + 1) / 2 * gain[:, None, :, None, None]) * 2 - 1
    with torch.no_grad():
        out = [vae.decode(vae.encode(x).mean).mean(dim=(1, 3, 4)) for x in (video, cycled)]
    d_in = (cycled - video).mean(dim=(1, 3, 4))
    d_out = out[1] - out[0]
    return float((d_out * d_in).sum() / (d_in * d_in).sum())


def frame_change(videos: torch.Tensor) -> tuple[float, float]:
    """(mean |f_{k+1} − f_k| over k ≥ 1, mean |f1 − f0| / that) for B×3×F×H×W in [-1, 1], per clip averaged."""
    diffs = (videos[:, :, 1:] - videos[:, :, :-1]).abs().mean(dim=(1, 3, 4))  # B×(F-1)
    later = diffs[:, 1:].mean(1)
    return float(later.mean()), float((diffs[:, 0] / later.clamp(min=1e-6)).mean())


VAE_STEPS = 1000  # the control VAE's steps when --vae is not given (RESULTS.md: ~5 CPU-min)
STEPS = 3000  # diffusion steps
HR_STEPS = 20000  # stage 2 (ultrasound clips alone) of the heart-rate model; 6000 gave ρ 0.18 (RESULTS.md)
HR_BATCH = 23  # every ultrasound training clip of the demo set in each step
GUIDANCE = 3.0  # the guided row's scale
VAE_OVERRIDES = ("vae.shortcut=true", "data.size=32", "train.lr_schedule=constant")
"""The control VAE: vae_demo with the colour shortcut (what passes the frame-mean pulsation), at 32 px, with the
constant learning rate it was measured with (RESULTS.md, "Clinical control, fourth run": ρ 0.93 on its
reconstructions, gain transfer 0.67 at 1000 steps), whatever vae_demo's own schedule."""


def vae_config(args):
    """The control VAE's run config: ``vae_demo`` + :data:`VAE_OVERRIDES`, ``--vae-steps`` steps in ``WORK/runs``,
    resumed (``ckpt=last``) when a checkpoint of it is there."""
    from medsora.config import compose

    run_root = Path(args.work) / "runs" / "control_vae"
    resume = ["ckpt=last"] if any(run_root.glob("version_*/checkpoints/*.ckpt")) else []
    every = max(1, min(args.vae_steps, 100))
    return compose("vae_demo", [*VAE_OVERRIDES, f"trainer.max_steps={args.vae_steps}", "name=control_vae",
                                f"out_dir={Path(args.work) / 'runs'}", "trainer.enable_progress_bar=false",
                                f"trainer.val_check_interval={every}", f"trainer.checkpoint_every_n_steps={every}",
                                *resume])


def train_vae(args) -> Path:
    """Train (or finish) the control VAE; its last checkpoint."""
    from medsora.training.stage import fit_stage

    return fit_stage(vae_config(args)).last_ckpt


def run_overrides(args, cache: Path, steps: int) -> list:
    """The attr_demo overrides both stages share, with their encode cache and step count (``args.overrides``,
    the user's extras, go after them)."""
    return [f"vae.ckpt={Path(args.vae).resolve()}", f"data.cache={cache}", "data.size=32",
            "cond.first_frame=true", "cond.first_frame_dropout=0.5", "model.blocks=[full_attn]", "model.mlp_ratio=4",
            "align=off", f"trainer.max_steps={steps}", f"out_dir={args.work}/runs", "trainer.enable_progress_bar=false",
            "trainer.val_check_interval=1000", "trainer.checkpoint_every_n_steps=1000"]


def compose_run(args):
    from medsora.config import compose
    from medsora.flow.raft_weights import file_sha256

    cache = Path(args.work) / "cache" / file_sha256(args.vae)[:12]  # one cache per VAE (a cache refuses another's)
    overrides = [*run_overrides(args, cache, args.steps), *args.overrides]
    return compose("attr_demo", overrides), overrides


def ultrasound_manifest(cfg, work) -> Path:
    """``WORK/ultrasound.jsonl``: the demo manifest's ultrasound rows (paths stay relative to the demo folder)."""
    from medsora.data.datamodule import resolve_root

    rows = [line for line in (resolve_root(cfg.data) / "manifest.jsonl").read_text().splitlines()
            if line.strip() and json.loads(line)["modality"] == "ultrasound"]
    out = Path(work) / "ultrasound.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rows) + "\n")
    return out


def compose_hr_run(args, base, stage1: Path):
    """Stage 2 of the heart-rate model: the stage-1 weights (``train.init_from``) trained on for ``--hr-steps``
    on the ultrasound clips alone, the modality that carries the attribute, ``--hr-batch`` clips a step.

    Why (RESULTS.md, "Clinical control, fifth run"): the rate-dependent part of an ultrasound latent has a
    variance of ~0.007 in latents of variance ~0.36, and in a batch of all four modalities two of eight clips
    are ultrasound; 3000-12000 steps on all modalities left the samples' rate unrelated to the request
    (ρ -0.4 to 0.1), while the same weights trained on ultrasound batches learn it."""
    from medsora.config import compose
    from medsora.data.demo import MODALITIES

    manifest = ultrasound_manifest(base, args.work)
    cache = Path(args.work) / "cache" / f"{Path(base.data.cache).name}-ultrasound"
    extras = [o for o in args.overrides if not o.startswith(("data.cache=", "trainer.max_steps="))]  # stage 1's own
    overrides = [*run_overrides(args, cache, args.hr_steps), *extras, f"data.manifest={manifest}",
                 f"train.init_from={stage1}", f"cond.modalities=[{','.join(sorted(MODALITIES))}]",
                 f"data.batch_size={args.hr_batch}", "name=attr_demo_hr"]
    return compose("attr_demo", overrides), overrides


def train(cfg) -> Path:
    from medsora.training.demo import _encode
    from medsora.training.stage import fit_stage

    _encode(cfg, Path(cfg.vae.ckpt))  # resumes: finished shards are kept
    result = fit_stage(cfg)
    return result.last_ckpt


def real_clips(cfg):
    from medsora.encode import clip_datasets

    out = {}
    for split, dataset in clip_datasets(cfg.data, ["train", "val"]).items():
        out[split] = [dataset[i] for i in range(len(dataset))]
    return out


def heart_rate(module, clips, seed: int, guidance: float = 3.0) -> dict:
    n = 8
    requested = [r for r in RATES for _ in range(n)]
    rows = [{"heart_rate": r} for r in requested]
    common = dict(seed=seed, modalities=["ultrasound"] * len(rows), batch_size=24)
    runs = {
        "conditioned (guidance 1)": module.generate(len(rows), attributes=rows, guidance_scale=1.0, **common),
        f"guided on heart_rate (scale {guidance:g})": module.generate(len(rows), attributes=rows,
                                                                     guidance_scale=guidance,
                                                                     guide_attributes=["heart_rate"], **common),
        "attribute dropped": module.generate(len(rows), attributes=None, guidance_scale=1.0, **common),
    }
    table = {}
    for name, videos in runs.items():
        got = [measured_rate(v) for v in videos]
        table[name] = {"rho": spearman(requested, got),
                       "median_bpm": {r: float(np.median([g for q, g in zip(requested, got) if q == r])) for r in RATES}}
    us = [c for split in clips.values() for c in split if c["modality"] == "ultrasound"]
    manifest = [json.loads(c["attributes"])["heart_rate"] for c in us]
    video = torch.stack([c["video"] for c in us])
    vae = module._vae.on("cpu")
    with torch.no_grad():
        recon = torch.cat([vae.decode(vae.encode(v).mean).clamp(-1, 1) for v in video.split(8)])
    table["real clips (all rates)"] = {"rho": spearman(manifest, [measured_rate(v) for v in video]), "median_bpm": {}}
    table["VAE reconstructions (all rates)"] = {"rho": spearman(manifest, [measured_rate(v) for v in recon]),
                                                "median_bpm": {}}
    table["VAE reconstructions (all rates)"]["gain_transfer"] = gain_transfer(vae, video)
    return table


def image_to_video(module, clips, seed: int) -> dict:
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    val = clips["val"]
    video = torch.stack([c["video"] for c in val])
    first = video[:, :, 0]
    rows = []
    for c in val:
        row = json.loads(c["attributes"])
        rows.append({"heart_rate": row["heart_rate"]} if "heart_rate" in row else {})
    generated = module.generate(len(val), seed=seed, modalities=[c["modality"] for c in val], attributes=rows,
                                first_frames=first, guidance_scale=1.0, batch_size=len(val))
    vae = module._vae.on("cpu")
    with torch.no_grad():
        recon_frame = vae.decode(vae.encode(first[:, :, None]).mean).clamp(-1, 1)[:, :, 0]
        recon_clip = vae.decode(vae.encode(video).mean).clamp(-1, 1)
    unit = lambda x: (x + 1) / 2  # noqa: E731
    metrics = {}
    for name, frame in (("generated first frame", generated[:, :, 0]), ("VAE reconstruction", recon_frame)):
        metrics[name] = {
            "psnr": float(peak_signal_noise_ratio(unit(frame), unit(first), data_range=1.0, dim=(1, 2, 3),
                                                  reduction="elementwise_mean")),
            "ssim": float(structural_similarity_index_measure(unit(frame), unit(first), data_range=1.0)),
        }
    motion = {"generated from the first frame": frame_change(generated), "real clips": frame_change(video),
              "VAE reconstructions of the clips": frame_change(recon_clip)}
    return {"fidelity": metrics, "motion": motion, "clips": len(val)}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (data-loader workers)."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def describe_vae(path) -> str:
    """``steps N, vae.norm X, shortcut on/off`` of a VAE checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    vae = ckpt["medsora_vae"]["vae"]
    return (f"{ckpt.get('global_step', '?')} steps, vae.norm {vae.get('norm')}, "
            f"shortcut {'on' if vae.get('shortcut') else 'off'}")


def report(args, overrides, hr, i2v, seconds, steps, load, cfg, cpu: float, vae: str, stage1=None,
           stage2_steps=None) -> str:
    from medsora.data.demo import DEMO_VERSION

    d = cfg.diffusion
    shown = [o for o in overrides if not o.startswith(("vae.ckpt=", "data.cache=", "out_dir=", "trainer.enable_"))]
    lines = [
        "## Clinical control: heart-rate conditioning and image-to-video (benchmarks/control.py)",
        "",
        f"Command: `python benchmarks/control.py {' '.join(sys.argv[1:])}`",
        f"Machine: {describe_machine()}; load average at the start {load}.",
        f"Run: experiment attr_demo + `{' '.join(shown)}`, {steps} steps, {seconds / 60:.1f} min wall and "
        f"{cpu:.0f} CPU-s (user + system, this process and its workers; VAE training + encode + train + evaluate); "
        f"demo set v{DEMO_VERSION} at {cfg.data.size} px × {cfg.data.num_frames} frames "
        f"(stride {cfg.data.frame_stride}), {d.objective} objective, {d.sampler} {d.sample_steps} steps; "
        f"VAE `{vae}` ({describe_vae(vae)}).",
        "",
        "**Heart-rate control** (8 ultrasound clips per requested rate; rate measured from the pixels)"
        + (f", model: the run above trained on for {stage2_steps} more steps on the ultrasound clips alone "
           f"(`train.init_from`, batch {args.hr_batch}; stage 2, `--hr-steps`):" if stage2_steps is not None else ":"),
        "",
        "| sampling | Spearman ρ (requested vs measured) | median measured bpm at 50 / 80 / 120 |",
        "|---|---:|---|",
    ]
    for name, row in hr.items():
        med = " / ".join(f"{row['median_bpm'][r]:.0f}" for r in RATES) if row["median_bpm"] else "–"
        lines.append(f"| {name} | {row['rho']:.2f} | {med} |")
    if stage1 is not None:
        lines += ["", "The same test on the run above alone (stage 1, all modalities): "
                      + "; ".join(f"{name} ρ {row['rho']:.2f}" for name, row in stage1.items()
                                  if row["median_bpm"]) + "."]
    transfer = hr["VAE reconstructions (all rates)"]["gain_transfer"]
    lines += ["", f"VAE gain transfer (share of a ±20 % per-frame brightness cycle its reconstructions keep): "
                  f"{transfer:.2f}."]
    fid, mot = i2v["fidelity"], i2v["motion"]
    lines += [
        "",
        f"**Image-to-video** ({i2v['clips']} held-out demo clips, generated from their first frame):",
        "",
        "| first frame vs the given frame | PSNR (dB) | SSIM |",
        "|---|---:|---:|",
        *[f"| {name} | {m['psnr']:.2f} | {m['ssim']:.3f} |" for name, m in fid.items()],
        "",
        "| clips | mean frame-to-frame change (frames ≥ 1, [-1, 1] units) | jump after frame 0 (ratio) |",
        "|---|---:|---:|",
        *[f"| {name} | {c:.4f} | {j:.2f} |" for name, (c, j) in mot.items()],
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=None,
                        help="a VAE checkpoint (default: train the control VAE, see --vae-steps)")
    parser.add_argument("--vae-steps", type=int, default=VAE_STEPS,
                        help=f"steps of the control VAE trained without --vae (default {VAE_STEPS})")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"diffusion training steps (default {STEPS})")
    parser.add_argument("--guidance", type=float, default=GUIDANCE,
                        help=f"scale of the row guided on the heart rate alone (default {GUIDANCE:g})")
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/medsora/control-bench"),
                        help="cache + run folder")
    parser.add_argument("--ckpt", default=None, help="skip training: evaluate this attr_demo checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-append", action="store_true", help="print only, do not append to RESULTS.md")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides of the run")
    parser.add_argument("--hr-steps", type=int, default=HR_STEPS,
                        help=f"stage 2 of the heart-rate model: steps on the ultrasound clips alone (default {HR_STEPS}; "
                             "0 = test the stage-1 model)")
    parser.add_argument("--hr-batch", type=int, default=HR_BATCH, help=f"stage 2's clips per step (default {HR_BATCH})")
    parser.add_argument("--hr-ckpt", default=None, help="skip stage 2: test this checkpoint's heart-rate control")
    args = parser.parse_args(argv)
    load = f"{os.getloadavg()[0]:.1f}"
    began, cpu = time.perf_counter(), cpu_seconds()
    from medsora.training.diffusion_module import DiffusionModule

    if args.ckpt:
        ckpt = Path(args.ckpt)
        module = DiffusionModule.from_checkpoint(str(ckpt))
        args.vae = args.vae or module.cfg.vae.ckpt
        overrides = compose_run(args)[1]
    else:
        if args.vae is None:
            args.vae = str(train_vae(args))
        cfg, overrides = compose_run(args)
        ckpt = train(cfg)
        module = DiffusionModule.from_checkpoint(str(ckpt))
    vae = args.vae
    steps = int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])
    clips = real_clips(module.cfg)
    stage1 = heart_rate(module, clips, args.seed, args.guidance)
    i2v = image_to_video(module, clips, args.seed)
    hr_ckpt, hr, stage2 = args.hr_ckpt, stage1, None
    if hr_ckpt is None and args.hr_steps > 0:
        hr_ckpt = train(compose_hr_run(args, module.cfg, ckpt)[0])
    if hr_ckpt is not None:
        hr_module = DiffusionModule.from_checkpoint(str(hr_ckpt))
        hr = heart_rate(hr_module, real_clips(hr_module.cfg), args.seed, args.guidance)
        stage2 = int(torch.load(hr_ckpt, map_location="cpu", weights_only=False)["global_step"])
    text = report(args, overrides, hr, i2v, time.perf_counter() - began, steps, load, module.cfg,
                  cpu_seconds() - cpu, vae, stage1 if stage2 is not None else None, stage2)
    print(text)
    print(f"checkpoint: {ckpt}" + (f"; heart-rate model: {hr_ckpt}" if hr_ckpt else ""))
    if not args.no_append:
        append_results(text)


if __name__ == "__main__":
    main()
