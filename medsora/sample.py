"""``python -m medsora.sample``: videos from a trained diffusion checkpoint.

    python -m medsora.sample --ckpt lightning_logs/demo/version_0/checkpoints/last.ckpt --num 8 --out samples/
    python -m medsora.sample --ckpt last.ckpt --num 16 --out s/ --sampler dpmpp --steps 25 --cfg 4 \\
        --modality endoscopy --prompt "a polyp near the center" --seed 7
    python -m medsora.sample --ckpt last.ckpt --out s/ --modality ultrasound --attr heart_rate=60 --image echo.dcm \\
        --image-frame 3
    python -m medsora.sample --ckpt last.ckpt --out s/ --frames 129 --overlap 1    # a long video, window by window

Uses the checkpoint's EMA weights (when the run had EMA) and its config; the VAE is the run's
``vae.ckpt`` (``--vae`` when it moved). Sample i is a function of ``seed + i`` alone: any batch
size, CPU or GPU gives the same videos (up to floating point). Writes one mp4 and one gif per
sample, ``contact_sheet.png`` (the first 64) and ``samples.json`` (settings and labels).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from tqdm import tqdm

from medsora.data.video_io import contact_sheet, to_uint8, write_gif, write_mp4
from medsora.diffusion.samplers import SAMPLERS

__all__ = ["build_parser", "main", "sample_to_folder"]

SHEET_MAX = 64


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: no CUDA device is visible; use --device cpu")
    return torch.device(name)


def sample_to_folder(module, out: Path, num: int, *, seed: int = 0, sampler: Optional[str] = None,
                     steps: Optional[int] = None, guidance: Optional[float] = None,
                     modalities: Optional[Sequence[str]] = None, prompts: Optional[Sequence[str]] = None,
                     negative_prompt: Optional[str] = None, batch_size: int = 8, fps: int = 8,
                     progress: bool = True, control: Optional[dict] = None, long_video: Optional[dict] = None) -> dict:
    """Generate ``num`` videos with ``module`` (a ``DiffusionModule``) into ``out``.

    ``modalities``/``prompts`` of length 1 apply to every sample; longer lists are cycled.
    ``control``: attributes / guide_attributes / first_frames for every sample (``medsora.cond.cli``).
    ``long_video``: ``num_frames`` / ``overlap`` / ``context_frames`` of ``generate`` (``--frames`` …).
    Returns the record written to ``samples.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    cycle = lambda v: None if not v else [v[i % len(v)] for i in range(num)]  # noqa: E731
    modalities, prompts = cycle(list(modalities or [])), cycle(list(prompts or []))
    sheet, labels, files = [], [], []
    began = time.perf_counter()
    bar = tqdm(total=num, unit="video", desc="sampling", disable=not progress)
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        part = lambda v: None if v is None else v[start:start + n]  # noqa: E731
        videos, names = module.generate(n, seed=seed, start=start, sampler=sampler, steps=steps,
                                        guidance_scale=guidance, modalities=part(modalities), prompts=part(prompts),
                                        negative_prompt=negative_prompt, batch_size=n, return_labels=True,
                                        progress=progress and bool(long_video), **(control or {}), **(long_video or {}))
        frames = to_uint8(videos)
        for i, clip in enumerate(frames):
            stem = out / f"sample_{start + i:03d}"
            write_mp4(clip, stem.with_suffix(".mp4"), fps)
            write_gif(clip, stem.with_suffix(".gif"), fps)
            files.append(stem.name)
            if len(sheet) < SHEET_MAX:
                sheet.append(clip)
        labels += list(names or [""] * n)
        bar.update(n)
    bar.close()
    import numpy as np

    contact_sheet(np.stack(sheet), out / "contact_sheet.png", labels=labels[: len(sheet)] if any(labels) else None,
                  scale=max(1, 96 // sheet[0].shape[1]))
    cfg = module.cfg.diffusion
    record = {"num": num, "seed": seed, "sampler": sampler or cfg.sampler, "steps": cfg.sample_steps if steps is None else steps,
              "objective": cfg.objective,
              "cfg_scale": cfg.cfg_scale if guidance is None else guidance, "negative_prompt": negative_prompt,
              "files": files, "labels": labels, "seconds": round(time.perf_counter() - began, 2),
              "attributes": (control or {}).get("attributes"), "guide_attributes": (control or {}).get("guide_attributes"),
              "first_frame": (control or {}).get("first_frames") is not None, **(long_video or {})}
    (out / "samples.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def _load_model(args):
    """The sampling model: a Lightning checkpoint (``--ckpt``) or an exported folder (``--model``)."""
    if args.model:
        if args.vae:
            raise SystemExit("error: --vae applies to --ckpt; an exported folder carries its own vae/")
        from medsora.pipeline import ExportedModel, MedSoraPipeline

        pipe = MedSoraPipeline.from_pretrained(args.model)
        return ExportedModel(pipe.transformer, pipe.vae, pipe.condition_encoder)
    from medsora.training.diffusion_module import DiffusionModule

    overrides = {"vae": {"ckpt": str(Path(args.vae).expanduser().resolve())}} if args.vae else None
    return DiffusionModule.from_checkpoint(args.ckpt, overrides=overrides, force_vae=args.force_vae)


def _training_fps(args) -> Optional[float]:
    """The training clips' frame rate: recorded by the data module in a checkpoint, or by ``medsora.export``
    in ``sampling.json`` of a model folder (None when absent)."""
    if args.ckpt:
        state = torch.load(args.ckpt, map_location="cpu", weights_only=True, mmap=True)
        return (state.get("VideoDataModule") or {}).get("fps")
    record = Path(args.model).expanduser() / "sampling.json"
    return json.loads(record.read_text(encoding="utf-8")).get("fps") if record.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.sample",
                                description="Sample videos from a MedSora diffusion checkpoint (EMA weights).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="a DiffusionModule checkpoint (.ckpt)")
    source.add_argument("--model", help="an exported model folder (python -m medsora.export)")
    p.add_argument("--num", type=int, default=8, help="number of videos (default 8)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=None,
                   help="ddpm|ddim|dpmpp (Gaussian models), euler|heun (flow matching); default: the run's diffusion.sampler")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: diffusion.sample_steps)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed + i (default 0)")
    p.add_argument("--prompt", action="append", help="caption; repeat for several (cycled over the samples)")
    p.add_argument("--modality", action="append", help="modality; repeat for several (cycled over the samples)")
    p.add_argument("--negative-prompt", default=None, help="caption of the unconditional branch of guidance")
    p.add_argument("--batch-size", type=int, default=8, help="videos per sampler batch (default 8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i] (default auto)")
    p.add_argument("--vae", default=None, help="VAE checkpoint, when the run's vae.ckpt moved")
    p.add_argument("--force-vae", action="store_true",
                   help="decode with a VAE whose fingerprint differs from the one the model was trained with")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the written files (default: the training clips' rate, else 8)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--frames", type=int, default=None, help="video frames, 1 + 4k (default: the training clip's); "
                   "beyond the training length the clip is extended window by window (README: Long videos)")
    p.add_argument("--overlap", type=int, default=0, help="latent frames each window re-makes and cross-fades (default 0)")
    p.add_argument("--context-frames", type=int, default=1,
                   help="latent frames of the previous window each window is given (default 1)")
    from medsora.cond.cli import add_control_arguments

    add_control_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> None:
    """Bad values as one-line errors before any work (``ValueError`` naming the option and the fix)."""
    import math

    for name, value, low in (("--num", args.num, 1), ("--batch-size", args.batch_size, 1), ("--seed", args.seed, 0),
                             ("--steps", args.steps, 1), ("--fps", args.fps, 1)):
        if value is not None and value < low:
            raise ValueError(f"{name} = {value}: must be >= {low}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps <= 240):
        raise ValueError(f"--fps = {args.fps}: must be a number <= 240")
    if args.cfg is not None and not (math.isfinite(args.cfg) and args.cfg >= 0):
        raise ValueError(f"--cfg = {args.cfg}: the guidance scale must be a finite number >= 0 (1 = no guidance)")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder (it is created if missing)")
    for flag, value in (("--ckpt", args.ckpt), ("--vae", args.vae)):
        if value is not None and not Path(value).expanduser().is_file():
            raise FileNotFoundError(f"{flag} {value}: no such file")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Command-line entry point; returns the ``samples.json`` record."""
    args = build_parser().parse_args(argv)
    check_args(args)
    module = _load_model(args)
    if hasattr(module, "check_conditions"):
        module.check_conditions(args.modality, args.prompt, args.negative_prompt)  # before any sampling
    module = module.to(_device(args.device))
    from medsora.cond.cli import control_from_args

    control = control_from_args(args, module)
    long_video = None
    if args.frames is not None:  # checked before any sampling: one line naming --frames / --overlap
        from medsora.diffusion.extend import check_extension
        from medsora.vae.select import temporal_stride

        check_extension(args.frames, temporal_stride(module.cfg.vae), module.latent_grid()[0], args.context_frames,
                        args.overlap)
        long_video = {"num_frames": args.frames, "overlap": args.overlap, "context_frames": args.context_frames}
    elif args.overlap or args.context_frames != 1:
        raise ValueError("--overlap / --context-frames apply to long videos: add --frames N")
    if args.fps is None:
        args.fps = _training_fps(args) or 8
    record = sample_to_folder(
        module, Path(args.out), args.num, seed=args.seed, sampler=args.sampler, steps=args.steps, guidance=args.cfg,
        modalities=args.modality, prompts=args.prompt, negative_prompt=args.negative_prompt,
        batch_size=max(1, args.batch_size), fps=args.fps, progress=not args.no_progress, control=control,
        long_video=long_video,
    )
    print(f"{args.num} videos in {record['seconds']:.1f} s -> {Path(args.out).resolve()} (contact_sheet.png, "
          "sample_*.mp4/.gif, samples.json)")
    return record


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.sample"))
