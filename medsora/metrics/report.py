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
    """A table of metric values (with the real set's reference value where computed), the protocol each
    metric followed, then the skipped metrics and unreadable videos with their reasons."""
    lines = [
        f"Generated: `{report['fake']}` ({report['num_fake']} videos)"
        + (f"; real: `{report['real']}` ({report['num_real']} videos)" if report.get("real") else ""),
        "",
        "| metric | value | real (reference) | better | details | how videos were resampled |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["metrics"].items():
        details = ", ".join(f"{k}={_fmt(v)}" for k, v in entry["details"].items())
        better = "higher" if entry["higher_is_better"] else "lower"
        lines.append(f"| {name} | {_fmt(entry['value'])} | {_fmt(entry['real_value'])} | {better} | "
                     f"{_cell(details) or '—'} | {_cell(entry['protocol'])} |")
    if report["skipped"]:
        lines += ["", "Skipped:"]
        lines += [f"- **{name}**: {reason}" for name, reason in report["skipped"].items()]
    if report["unreadable"]:
        lines += ["", "Unreadable videos (left out):"]
        lines += [f"- {err}" for err in report["unreadable"]]
    return "\n".join(lines)
