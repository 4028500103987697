"""The markdown form of a utility report."""
from __future__ import annotations

__all__ = ["utility_markdown"]


def utility_markdown(report: dict) -> str:
    metric = report["metric"]
    lines = [f"Downstream utility: {report['task']} of '{report['label']}', {metric} on "
             f"{report['test_clips']} real held-out clips ({report['test_videos']} videos)", "",
             f"| trained on | {metric} | train clips (videos) | final train loss |", "|---|---|---|---|"]
    for name, entry in report["scores"].items():
        lines.append(f"| {name} | {entry['score']:.3f} | {entry['train_clips']} ({entry['train_videos']}) | "
                     f"{entry['final_train_loss']:.3g} |")
    if "chance" in report:
        lines += ["", f"Chance (majority class of the test clips): {report['chance']:.3f}."]
    if "ratio_generated_to_real" in report:
        lines += [f"Generated / real: {report['ratio_generated_to_real']:.2f}."]
    if report["unreadable"]:
        lines += ["", "Unreadable videos (left out):"] + [f"- {e}" for e in report["unreadable"]]
    return "\n".join(lines)
