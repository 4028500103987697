"""The markdown form of an evaluation report (the JSON form is the report dict itself)."""
from __future__ import annotations

import math

__all__ = ["markdown_report"]


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # protocols may hold |x| and must not split the table row


def markdown_report(report: dict) -> str:
    """The protocol's label, a table of metric values with their bootstrap intervals (and the real set's reference
    value where computed) and the way each metric resampled the videos, then the skipped metrics, refused
    reconstruction pairs and unreadable videos with their reasons."""
    lines = []
    if report.get("protocol"):
        p = report["protocol"]
        lines += [f"Protocol: **{p['label']}**" + ("" if p["complete"] else " (does NOT follow the protocol: fewer "
                                                   "videos than it asks)"), ""]
    lines += [
        f"Generated: `{report['fake']}` ({report['num_fake']} videos)"
        + (f"; real: `{report['real']}` ({report['num_real']} videos)" if report.get("real") else ""),
        "",
        "| metric | value | interval | real (reference) | better | details | how videos were resampled |",
        "|---|---|---|---|---|---|---|",
    ]
    methods = set()
    for name, entry in report["metrics"].items():
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in entry["details"].items())
        better = "higher" if entry["higher_is_better"] else "lower"
        ci = entry.get("interval")
        interval = "—" if not ci or ci["low"] is None else (
            f"[{_fmt(ci['low'])}, {_fmt(ci['high'])}] ({ci['confidence']:.0%})")
        if ci:
            methods.add(ci.get("method", ""))
        lines.append(f"| {name} | {_fmt(entry['value'])} | {interval} | {_fmt(entry['real_value'])} | {better} | "
                     f"{_cell(details) or '—'} | {_cell(entry['protocol'])} |")
    for method in sorted(m for m in methods if m):
        lines += ["", f"Intervals: {method}."]
    if report["skipped"]:
        lines += ["", "Skipped:"]
        lines += [f"- **{name}**: {reason}" for name, reason in report["skipped"].items()]
    if report.get("unpaired"):
        lines += ["", "Reconstructions not compared (frames or crop could not be matched with the source):"]
        lines += [f"- {err}" for err in report["unpaired"]]
    if report["unreadable"]:
        lines += ["", "Unreadable videos (left out):"]
        lines += [f"- {err}" for err in report["unreadable"]]
    return "\n".join(lines)
