"""``python -m medsora.reconstruct``: how well a trained VAE reproduces videos, clip by clip.

    python -m medsora.reconstruct --vae RUN/checkpoints/last.ckpt --input /data/echo --out recon/
    python -m medsora.reconstruct --vae last.ckpt --input clip.mp4 --out recon/ --size 128 --num-frames 33

Each video (any source ``medsora.data`` reads: video files, frame folders, DICOM, NIfTI; a folder
or one file) gives its deterministic central clip, preprocessed as in training (``data.size``,
``data.num_frames``, ``data.frame_stride`` of the VAE's run unless given). The clip is encoded
(posterior mode) and decoded; written per clip: ``NAME.mp4`` with the input on the left and the
reconstruction on the right, and its PSNR and SSIM (frame means, RGB in [0, 1], the definitions of
``medsora.metrics.reconstruction``). ``reconstruct.json`` and ``reconstruct.md`` hold every clip and
the means; an unreadable video is listed with its reason and skipped.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

import torch
from tqdm import tqdm

__all__ = ["build_parser", "main", "reconstruct"]


def _entries(source: Path):
    """The videos of a folder (manifest or scan), or one file as a one-video data set."""
    from medsora.data.manifest import VideoEntry, load_entries

    if source.is_dir():
        return source, load_entries(source)
    if not source.exists():
        raise FileNotFoundError(f"--input {source}: no such file or folder")
    return source.parent, [VideoEntry(source.resolve(), source.name, "", source.parent.name, None, {})]


def _settings(vae_ckpt: Path, size: Optional[int], num_frames: Optional[int], stride: Optional[int]):
    """Clip settings: the VAE run's ``data:`` section, with the given values replacing it."""
    from omegaconf import OmegaConf

    from medsora.data.dataset import ClipSettings
    from medsora.data.schema import DataConfig
    from medsora.training.checkpointing import load_checkpoint

    saved = ((load_checkpoint(vae_ckpt).get("hyper_parameters") or {}).get("cfg") or {}).get("data") or {}
    known = {k: v for k, v in saved.items() if k in DataConfig.__dataclass_fields__}
    data = OmegaConf.merge(OmegaConf.structured(DataConfig), known, {"crop": "center"})
    for key, value, low in (("size", size, 8), ("num_frames", num_frames, 1), ("frame_stride", stride, 1)):
        if value is not None:
            if value < low:
                raise ValueError(f"--{key.replace('_', '-')} = {value}: must be >= {low}")
            data[key] = value
    if (int(data.num_frames) - 1) % 4:
        raise ValueError(f"--num-frames = {data.num_frames}: must be 1 + 4k (1, 5, 9, 13, 17, ...) for the causal VAE")
    if int(data.size) % 8:
        raise ValueError(f"--size = {data.size}: must be a multiple of 8")
    return ClipSettings.from_config(data)


def _stem(key: str, used: set[str]) -> str:
    """A file name for the video ``key``: its relative path without the (possibly double: ``.nii.gz``) suffix."""
    key = str(key)
    for suffix in (".nii.gz", PurePosixPath(key).suffix):
        if suffix and key.lower().endswith(suffix.lower()):
            key = key[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("._") or "clip"
    name, k = stem, 1
    while name in used:
        k, name = k + 1, f"{stem}_{k}"
    used.add(name)
    return name


def playback_rate(clip_fps: float) -> float:
    """The rate a clip is written at: its own (the source's over the stride), or 8 fps when that is unknown
    (0) or outside 1..240 (an fMRI volume every 2 s would play 17 frames in 34 s)."""
    return float(clip_fps) if 1 <= clip_fps <= 240 else 8.0


@torch.no_grad()
def reconstruct(vae_ckpt: str | Path, source: str | Path, out: str | Path, *, size: Optional[int] = None,
                num_frames: Optional[int] = None, frame_stride: Optional[int] = None, fps: Optional[float] = None,
                device: str = "cpu", progress: bool = True) -> dict:
    """Reconstruct every video of ``source`` with the VAE of ``vae_ckpt``; returns the summary record.

    ``fps``: the rate of the written mp4s; ``None`` keeps each clip's own (:func:`playback_rate`).

    Raises:
        FileNotFoundError / CheckpointError / ValueError: a missing input, a bad checkpoint, bad settings.
    """
    from medsora.data.dataset import VideoClipDataset
    from medsora.data.sources.formats import UnreadableVideo
    from medsora.data.table import DataError, SourceTable
    from medsora.data.video_io import to_uint8, write_mp4
    from medsora.metrics.reconstruction import PSNR, SSIM
    from medsora.vae import load_vae

    vae_ckpt, source, out = Path(vae_ckpt).expanduser(), Path(source).expanduser(), Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder")
    settings = _settings(vae_ckpt, size, num_frames, frame_stride)
    vae, _ = load_vae(vae_ckpt)
    vae = vae.to(device)
    root, entries = _entries(source)
    table = SourceTable(entries, max_bad_fraction=1.0, hint=str(source))
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped, used = [], [], set()
    psnr, ssim = PSNR(), SSIM()
    for index in tqdm(range(len(entries)), desc="reconstructing", unit="clip", disable=not progress):
        entry = entries[index]
        try:
            item = VideoClipDataset(table, [index], settings, train=False)[0]
            video = item["video"]
        except (UnreadableVideo, DataError) as err:
            skipped.append({"path": entry.key, "reason": " ".join(str(err).split())[:300]})
            continue
        clip = video[None].to(device)
        recon = vae.decode(vae.encode(clip).mode()).float().clamp(-1, 1)
        real, fake = (clip[0].transpose(0, 1) + 1) / 2, (recon[0].transpose(0, 1) + 1) / 2  # F×3×H×W in [0, 1]
        stem = _stem(entry.key, used)
        rate = fps if fps is not None else playback_rate(float(item["fps"]))
        write_mp4(to_uint8(torch.cat([clip, recon], dim=-1).cpu())[0], out / f"{stem}.mp4", rate)
        rows.append({"path": entry.key, "file": f"{stem}.mp4", "frames": int(clip.shape[2]), "fps": round(rate, 3),
                     "psnr": round(float(psnr.frame_scores(real.cpu(), fake.cpu()).mean()), 3),
                     "ssim": round(float(ssim.frame_scores(real.cpu(), fake.cpu()).mean()), 4)})
    mean = {k: round(sum(r[k] for r in rows) / len(rows), 4) if rows else None for k in ("psnr", "ssim")}
    record = {"vae": str(vae_ckpt), "input": str(source), "clips": rows, "skipped": skipped, "mean": mean,
              "settings": {"size": settings.size, "num_frames": settings.num_frames,
                           "frame_stride": settings.frame_stride, "fps": fps if fps is not None else "source"},
              "protocol": "central clip per video; posterior mode; PSNR and SSIM per frame on RGB in [0, 1], "
                          "averaged over the clip's frames"}
    (out / "reconstruct.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "reconstruct.md").write_text(_markdown(record), encoding="utf-8")
    return record


def _markdown(record: dict) -> str:
    lines = [f"# VAE reconstructions: {record['vae']}", "", f"Input: {record['input']} — {record['protocol']}.", "",
             "| clip | frames | PSNR (dB) | SSIM | side by side |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['path']} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['file']} |" for r in record["clips"]]
    if record["clips"]:
        lines.append(f"| **mean of {len(record['clips'])}** | | {record['mean']['psnr']:.2f} | "
                     f"{record['mean']['ssim']:.4f} | |")
    lines += [f"- skipped {s['path']}: {s['reason']}" for s in record["skipped"]]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.reconstruct",
                                description="Reconstruct videos with a trained VAE: side-by-side mp4s, PSNR/SSIM.")
    p.add_argument("--vae", required=True, help="a VAE-stage checkpoint (.ckpt)")
    p.add_argument("--input", required=True, help="a video file, frame folder, DICOM/NIfTI file, or a data folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=None, help="clip side in pixels (default: the VAE run's data.size)")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip, 1 + 4k (default: the run's)")
    p.add_argument("--frame-stride", type=int, default=None, help="interval between frames (default: the run's)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the written mp4s (default: each clip's own, 8 when unknown or outside 1..240)")
    p.add_argument("--device", default="cpu", help="cpu | cuda[:i] (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fps is not None and not 1 <= args.fps <= 240:
        raise ValueError(f"--fps = {args.fps}: must be within 1..240")
    record = reconstruct(args.vae, args.input, args.out, size=args.size, num_frames=args.num_frames,
                         frame_stride=args.frame_stride, fps=args.fps, device=args.device,
                         progress=not args.no_progress)
    print(_markdown(record))
    print(f"{len(record['clips'])} clips -> {Path(args.out).resolve()} (reconstruct.json, reconstruct.md, *.mp4)")
    return 0 if record["clips"] else 1


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.reconstruct"))
