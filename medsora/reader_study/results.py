"""``results``: accuracy, realism and agreement of a study's readers → results.json, results.md, results.png.

For every reader and for all answers pooled, overall and per modality:

* **accuracy** at telling real from generated (the ``origin`` question) with a Wilson 95 % interval,
  and the two rates behind it: real clips called real, generated clips called real (the
  "realism rate" of Bora-style studies: how often a generated clip passes as real);
* each **scale question** (realism 1–5) for real vs generated clips: mean (t interval), sd, median,
  difference and a Mann–Whitney p-value;
* **agreement** between readers on ``origin``, over the clips every reader answered: Cohen's κ for
  two readers, Fleiss' κ for more;
* the **mean of the readers' accuracies** with a t interval across readers (for two or more);
* the median time from a clip being shown to its answer.

The pooled interval treats every answer as independent; answers of one reader, or to one clip,
are correlated, so it is narrower than a study-level interval: the reader-mean interval is the
one to quote when readers differ.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import numpy as np

from medsora.reader_study.db import answers_with_truth, connect, read_meta
from medsora.reader_study.questions import ORIGIN, questions_from_json
from medsora.reader_study.stats import cohen_kappa, compare_scores, fleiss_kappa, mean_interval, proportion

__all__ = ["study_results", "write_results", "markdown"]

POOLED = "pooled"


def _summary(rows: list[dict], scales: list[str], level: float) -> dict:
    judged = [r for r in rows if ORIGIN in r["answers"]]
    correct = sum(r["answers"][ORIGIN] == r["origin"] for r in judged)
    by_truth = {o: [r for r in judged if r["origin"] == o] for o in ("real", "generated")}
    out = {
        "answers": len(rows),
        "accuracy": proportion(correct, len(judged), level),
        "real_judged_real": proportion(sum(r["answers"][ORIGIN] == "real" for r in by_truth["real"]),
                                       len(by_truth["real"]), level),
        "generated_judged_real": proportion(sum(r["answers"][ORIGIN] == "real" for r in by_truth["generated"]),
                                            len(by_truth["generated"]), level),
        "scores": {},
        "median_seconds": (float(np.median([r["seconds"] for r in rows if r["seconds"] is not None]))
                           if any(r["seconds"] is not None for r in rows) else None),
    }
    for q in scales:
        values = {o: [r["answers"][q] for r in rows if r["origin"] == o and q in r["answers"]]
                  for o in ("real", "generated")}
        out["scores"][q] = compare_scores(values["real"], values["generated"], level)
    return out


def _agreement(rows: list[dict]) -> Optional[dict]:
    """κ on ``origin`` over the clips that every reader of ``rows`` answered; None for fewer than two readers."""
    labels: dict[str, dict[int, str]] = defaultdict(dict)
    for r in rows:
        if ORIGIN in r["answers"]:
            labels[r["reader"]][r["item"]] = r["answers"][ORIGIN]
    readers = sorted(labels)
    if len(readers) < 2:
        return None
    common = sorted(set.intersection(*(set(labels[name]) for name in readers)))
    if len(readers) == 2:
        a, b = ([labels[name][i] for i in common] for name in readers)
        kappa, method = cohen_kappa(a, b), "cohen"
    else:
        table = np.array([[sum(labels[name][i] == c for name in readers) for c in ("real", "generated")]
                          for i in common]).reshape(len(common), 2)
        kappa, method = fleiss_kappa(table), "fleiss"
    return {"method": method, "kappa": kappa, "items": len(common), "readers": len(readers)}


def _block(rows: list[dict], scales: list[str], level: float) -> dict:
    readers = sorted({r["reader"] for r in rows})
    per_reader = {name: _summary([r for r in rows if r["reader"] == name], scales, level) for name in readers}
    accuracies = [s["accuracy"]["value"] for s in per_reader.values() if s["accuracy"]]
    return {POOLED: _summary(rows, scales, level), "readers": per_reader,
            "reader_mean_accuracy": mean_interval(accuracies, level) if len(accuracies) >= 2 else None,
            "agreement": _agreement(rows)}


def study_results(db: Path, level: float = 0.95) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (see the module docstring)."""
    conn = connect(db)
    try:
        meta = read_meta(conn)
        rows = list(answers_with_truth(conn))
        items = conn.execute("SELECT modality, COUNT(*) AS n FROM items GROUP BY modality").fetchall()
    finally:
        conn.close()
    questions = questions_from_json(meta.pop("questions"))
    scales = [q.id for q in questions if q.kind == "scale"]
    modalities = sorted(r["modality"] for r in items)
    report = {
        "study": {k: meta[k] for k in ("title", "seed", "n", "per_modality", "size", "frames", "fps") if k in meta}
        | {"items": sum(r["n"] for r in items), "readers": len({r["reader"] for r in rows}), "answers": len(rows),
           "questions": [q.id for q in questions]},
        "confidence_level": level,
        "has_origin_question": any(q.id == ORIGIN for q in questions),
        "overall": _block(rows, scales, level),
        "modalities": {},
    }
    if len(modalities) > 1:
        report["modalities"] = {m: _block([r for r in rows if r["modality"] == m], scales, level) for m in modalities}
    return report


def _fmt_p(p: Optional[dict], percent: bool = True) -> str:
    if not p:
        return "–"
    scale = 100 if percent else 1
    return f"{p['value'] * scale:.1f} % [{p['ci'][0] * scale:.1f}, {p['ci'][1] * scale:.1f}] ({p['k']}/{p['n']})"


def _fmt_mean(s: Optional[dict]) -> str:
    if not s:
        return "–"
    ci = f" [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}]" if s.get("ci") else ""
    return f"{s['value']:.2f}{ci} (n={s['n']})"


def _block_md(block: dict, scales: list[str]) -> list[str]:
    head = "| reader | answers | accuracy | real called real | generated called real |" + \
        "".join(f" {q}: real | {q}: generated |" for q in scales) + " median s/clip |"
    lines = [head, "|" + "---|" * (6 + 2 * len(scales))]
    for name, s in [(POOLED, block[POOLED])] + sorted(block["readers"].items()):
        cells = [f"**{name}**" if name == POOLED else name, str(s["answers"]), _fmt_p(s["accuracy"]),
                 _fmt_p(s["real_judged_real"]), _fmt_p(s["generated_judged_real"])]
        for q in scales:
            cells += [_fmt_mean(s["scores"][q]["real"]), _fmt_mean(s["scores"][q]["generated"])]
        cells.append("–" if s["median_seconds"] is None else f"{s['median_seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    if block["reader_mean_accuracy"]:
        rm = block["reader_mean_accuracy"]
        lines.append(f"\nMean of the readers' accuracies: {rm['value'] * 100:.1f} % "
                     f"[{rm['ci'][0] * 100:.1f}, {rm['ci'][1] * 100:.1f}] (t interval over {rm['n']} readers).")
    agreement = block["agreement"]
    if agreement and agreement["kappa"] is not None:
        name = "Cohen's" if agreement["method"] == "cohen" else "Fleiss'"
        lines.append(f"\nAgreement on real vs generated: {name} κ = {agreement['kappa']:.3f} over the "
                     f"{agreement['items']} clips all {agreement['readers']} readers answered.")
    return lines


def markdown(report: dict) -> str:
    """The report as markdown tables (the JSON holds every figure; this is for reading)."""
    s = report["study"]
    scales = [q for q in report["overall"][POOLED]["scores"]]
    level = round(report["confidence_level"] * 100)
    lines = [f"# {s.get('title', 'Reader study')}: results", "",
             f"{s['items']} clips ({s.get('size')}×{s.get('size')} px, {s.get('frames')} frames at {s.get('fps')} fps), "
             f"{s['readers']} readers, {s['answers']} answers. Proportions are % with a Wilson {level} % interval "
             f"(k/n); scores are means with a t {level} % interval. Pooled intervals treat answers as independent.",
             "", "## All clips", ""]
    lines += _block_md(report["overall"], scales)
    for modality, block in report["modalities"].items():
        lines += ["", f"## {modality}", ""] + _block_md(block, scales)
    return "\n".join(lines) + "\n"


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = report["overall"]
    names = [POOLED] + sorted(block["readers"])
    summaries = [block[POOLED]] + [block["readers"][n] for n in names[1:]]
    scales = list(block[POOLED]["scores"])
    fig, axes = plt.subplots(1, 1 + bool(scales), figsize=(5 + 4 * bool(scales), 3.6), squeeze=False)
    ax = axes[0, 0]
    x = np.arange(len(names))
    acc = [s["accuracy"] for s in summaries]
    values = [a["value"] if a else np.nan for a in acc]
    err = np.array([[a["value"] - a["ci"][0], a["ci"][1] - a["value"]] if a else [0, 0] for a in acc]).T
    ax.bar(x, values, yerr=err, capsize=4, color=["#2456c8"] + ["#8aa4e0"] * (len(names) - 1))
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (real vs generated)")
    ax.legend(loc="lower right", fontsize=8)
    if scales:
        ax = axes[0, 1]
        q, width = scales[0], 0.38
        for j, (origin, colour) in enumerate((("real", "#3a923a"), ("generated", "#d9822b"))):
            stats = [s["scores"][q][origin] for s in summaries]
            means = [st["value"] if st else np.nan for st in stats]
            errs = np.array([[st["value"] - st["ci"][0], st["ci"][1] - st["value"]] if st and st["ci"] else [0, 0]
                             for st in stats]).T
            ax.bar(x + (j - 0.5) * width, means, width, yerr=errs, capsize=3, color=colour, label=origin)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(f"{q} (mean)")
        ax.legend(fontsize=8, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(db: Path, out: Path, level: float = 0.95) -> dict:
    """Write ``results.json``, ``results.md`` and ``results.png`` into ``out``; returns the report."""
    report = study_results(db, level)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "results.md").write_text(markdown(report), encoding="utf-8")
    _plot(report, out / "results.png")
    return report
