"""The ``README.md`` model card of an exported folder: what made the model, how to load it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

__all__ = ["data_provenance", "model_card"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_provenance(data: dict) -> dict:
    """Data root, manifest file and its SHA-256 (when the manifest is on this machine)."""
    root = str(data.get("root") or "")
    out: dict[str, Any] = {"root": root}
    manifest = data.get("manifest")
    candidates = [Path(manifest).expanduser()] if manifest else [
        Path(root).expanduser() / name for name in ("manifest.jsonl", "manifest.csv")] if root and root != "demo" else []
    for path in candidates:
        if path.is_file():
            out.update(manifest=str(path), manifest_sha256=_sha256(path))
            break
    else:
        out["manifest_sha256"] = None
    return out


def _metrics_table(evaluation: dict) -> str:
    rows = []
    for name, value in sorted((evaluation.get("metrics") or evaluation).items()):
        if isinstance(value, dict) and "value" in value:
            ci = value.get("ci") or value.get("interval")
            value = f"{value['value']:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
        elif isinstance(value, float):
            value = f"{value:.4g}"
        elif not isinstance(value, (int, str)):
            continue
        rows.append(f"| {name} | {value} |")
    return "\n".join(["| metric | value |", "|---|---|", *rows]) if rows else "(no scalar metrics found)"


def model_card(*, source: str, stage: str, step: Optional[int], ema: bool, run: dict,
               components: list[str], evaluation: Optional[dict] = None, eval_path: Optional[str] = None) -> str:
    """Markdown card: provenance (checkpoint, step, data, objective), components, usage and metrics."""
    diffusion = run.get("diffusion", {})
    data = data_provenance(run.get("data", {}))
    lines = [
        "---", "library_name: diffusers", "tags: [medsora, medical-video, video-generation]", "---", "",
        "# MedSora model", "",
        f"Exported by `python -m medsora.export` from `{source}` (stage `{stage}`, global step {step}).", "",
        "## Provenance", "",
        f"- weights: {'EMA' if ema else 'raw (non-EMA)'}",
        f"- data root: `{data['root'] or '-'}`; manifest: `{data.get('manifest', '-')}`; "
        f"manifest SHA-256: `{data['manifest_sha256'] or 'not on the exporting machine'}`",
    ]
    if stage == "diffusion":
        lines += [
            f"- objective: `{diffusion.get('objective', 'ddpm')}` (prediction `{diffusion.get('prediction', '-')}`), "
            f"default sampler `{diffusion.get('sampler')}` with {diffusion.get('sample_steps')} steps, "
            f"guidance scale {diffusion.get('cfg_scale')}",
            f"- clips: {run.get('data', {}).get('num_frames')} frames at {run.get('data', {}).get('size')} px",
            f"- backbone: `{json.dumps(run.get('model', {}).get('blocks'))}` × {run.get('model', {}).get('depth')}, "
            f"hidden {run.get('model', {}).get('hidden')}",
        ]
    lines += ["", "## Components", ""] + [f"- `{c}/`" for c in components] + ["", "## Use", "", "```python"]
    if stage == "diffusion":
        lines += [
            "import torch",
            "from medsora.pipeline import MedSoraPipeline",
            "pipe = MedSoraPipeline.from_pretrained(\"PATH/TO/THIS/FOLDER\")",
            "out = pipe(num_videos=2, generator=torch.Generator().manual_seed(0), output_type=\"np\")",
            "videos = out.frames  # N×F×H×W×3 uint8",
        ]
    else:
        lines += [
            "from medsora.export.components import MedSoraVAE",
            "vae = MedSoraVAE.from_pretrained(\"PATH/TO/THIS/FOLDER/vae\")",
            "z = vae.encode(video).mode() * vae.config.scaling_factor  # video: B×3×F×H×W in [-1, 1]",
        ]
    lines += ["```", "", "or `python -m medsora.sample --model PATH/TO/THIS/FOLDER --out samples/`.", ""]
    if evaluation is not None:
        lines += ["## Evaluation", "", f"From `{eval_path}`" +
                  (f" (protocol `{evaluation['protocol']}`)" if isinstance(evaluation.get("protocol"), str) else "") + ":",
                  "", _metrics_table(evaluation), ""]
    return "\n".join(lines)
