"""Audit outputs: the per-sample CSV, ``audit.json`` + ``audit.md``, a contact sheet of the closest pairs, the filter."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

__all__ = ["audit_markdown", "copy_unflagged", "write_contact_sheet", "write_csv"]


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["sample"])
        writer.writeheader()
        writer.writerows(rows)


def write_contact_sheet(path: Path, pairs: list[tuple[str, np.ndarray, str, np.ndarray, float]], size: int = 64,
                        frames: int = 6) -> Path | None:
    """Rows of (sample, its nearest training clip), closest first: ``(sample id, clip, train id, clip, distance)``."""
    from medsora.data.transforms import preprocess_frames
    from medsora.data.video_io import contact_sheet

    if not pairs:
        return None
    videos, labels = [], []
    for sample_id, sample, train_id, train, dist in pairs:
        for name, clip in ((f"sample {sample_id} d={dist:.3f}", sample), (f"train {train_id}", train)):
            idx = np.linspace(0, clip.shape[0] - 1, frames).round().astype(int)
            x = preprocess_frames(clip[idx], size)  # 3×F×S×S in [-1, 1]
            videos.append(((x.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy())
            labels.append(name)
    return contact_sheet(np.stack(videos), path, labels=labels, scale=2)


def copy_unflagged(rows: list[dict], samples_root: Path, paths: dict[str, str], out: Path) -> list[str]:
    """Copy every unflagged sample (all files of its name: ``x.mp4`` and its ``x.gif`` twin) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    for row in rows:
        if row["flagged"]:
            continue
        source = Path(paths[row["sample"]])
        rel = source.parent.relative_to(samples_root)
        for twin in sorted(source.parent.glob(source.stem + ".*")):
            if twin.is_file():
                (out / rel).mkdir(parents=True, exist_ok=True)
                shutil.copy2(twin, out / rel / twin.name)
        kept.append(row["sample"])
    (out / "filter.json").write_text(json.dumps({"kept": kept, "dropped": [r["sample"] for r in rows if r["flagged"]]},
                                                indent=2), encoding="utf-8")
    return kept


def audit_markdown(summary: dict) -> str:
    f = summary["flagged"]
    ci = f["interval"]
    interval = "—" if ci["low"] is None else f"[{ci['low']:.3f}, {ci['high']:.3f}] ({ci['confidence']:.0%})"
    lines = [
        f"Memorisation audit ({summary['features']['backend']} features): {f['count']} of {f['total']} samples flagged "
        f"as copies, fraction {f['fraction']:.3f} {interval}.", "",
        f"- threshold: {summary['threshold']:.4g} = the {summary['quantile']:.1%} quantile of {summary['held_out']['compared']} "
        f"held-out→train nearest distances ({summary['held_out']['source']}); held-out median "
        f"{summary['held_out']['median']:.4g}",
        f"- training clips indexed: {summary['train']['indexed']} ({summary['train']['unreadable']} unreadable)",
        f"- samples: {summary['samples']['compared']} compared ({summary['samples']['unreadable']} unreadable)",
        f"- per-sample table: `{summary['csv']}`; closest pairs: `{summary.get('contact_sheet') or '—'}`",
    ]
    unreadable = summary["unreadable"]
    if unreadable:
        lines += ["", "Unreadable clips (skipped):"] + [f"- {u}" for u in unreadable[:50]]
        if len(unreadable) > 50:
            lines.append(f"- … and {len(unreadable) - 50} more (audit.json)")
    return "\n".join(lines)
