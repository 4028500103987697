"""``python -m medsora.evaluate --utility LABEL``: is the generated data useful for a downstream task?

The classification accuracy score (Ravuri & Vinyals 2019) and EchoNet-Synthetic's
protocol: a small video model is trained only on generated clips labelled with the
condition they were generated from and tested on real held-out clips, next to the same
model trained on the real training clips (the reference), with fixed seeds. A label
whose values are numbers with more than 10 distinct values is a regression target
(scored by R², as for ejection fraction); anything else is a class (scored by accuracy,
with chance = the majority class's share of the test clips).
"""
from __future__ import annotations

import dataclasses
import time

from medsora.evaluation.utility.classifier import fit_and_score
from medsora.evaluation.utility.clips import ClipSpec, generated_clips, real_clips

__all__ = ["UtilitySettings", "is_regression", "utility_report"]


@dataclasses.dataclass
class UtilitySettings:
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"
    clip: ClipSpec = dataclasses.field(default_factory=ClipSpec)


def is_regression(label: str, values: list) -> bool:
    if label == "modality":
        return False
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return len(set(numbers)) > 10


SHUFFLES = 3
"""Label permutations the shuffled-label control averages."""


def utility_report(fake, real, label: str, settings: UtilitySettings | None = None, progress: bool = True,
                   controls: bool = False) -> dict:
    """Scores on the real held-out clips of the model trained on ``fake`` and of the one trained on real clips.

    controls: also train on label-shuffled real clips (a score that must be at chance; the mean over
            :data:`SHUFFLES` permutations).
    """
    s = settings or UtilitySettings()
    began = time.perf_counter()
    train, test = real_clips(real, label, s.clip, progress)
    fake_set = generated_clips(fake, label, s.clip, progress)
    values = train.labels + test.labels + fake_set.labels
    classes = None if is_regression(label, values) else sorted({str(v) for v in values})
    as_label = (lambda v: str(v)) if classes is not None else float  # noqa: E731
    labels = lambda clip_set: [as_label(v) for v in clip_set.labels]  # noqa: E731
    fit = dict(classes=classes, steps=s.steps, batch_size=s.batch_size, lr=s.lr, seed=s.seed, device=s.device)
    runs = {"generated": (fake_set, False), "real": (train, False)}
    if controls:
        runs["real_shuffled_labels"] = (train, True)
    scores = {}
    for name, (clip_set, shuffle) in runs.items():
        # The control averages SHUFFLES permutations: one permutation of a few dozen clips can keep a third of
        # the labels by chance, and a classifier trained on it then scores well above chance.
        results = [fit_and_score(clip_set.clips, labels(clip_set), test.clips, labels(test), shuffle_labels=shuffle,
                                 **dict(fit, seed=fit["seed"] + k)) for k in range(SHUFFLES if shuffle else 1)]
        scores[name] = {"score": sum(r.score for r in results) / len(results),
                        "final_train_loss": sum(r.final_loss for r in results) / len(results),
                        "train_clips": len(clip_set), "train_videos": len(set(clip_set.videos))}
    report = {
        "label": label, "task": "classification" if classes is not None else "regression",
        "metric": "accuracy" if classes is not None else "r2", "classes": classes,
        "fake": str(fake), "real": str(real), "scores": scores,
        "test_clips": len(test), "test_videos": len(set(test.videos)),
        "settings": {k: v for k, v in dataclasses.asdict(s).items()},
        "unreadable": train.unreadable + test.unreadable + fake_set.unreadable,
        "seconds": round(time.perf_counter() - began, 1),
    }
    if classes is not None:
        counts = {c: sum(1 for v in labels(test) if v == c) for c in classes}
        report["chance"] = max(counts.values()) / len(test)
        report["test_class_counts"] = counts
    if scores["real"]["score"]:
        report["ratio_generated_to_real"] = scores["generated"]["score"] / scores["real"]["score"]
    return report
