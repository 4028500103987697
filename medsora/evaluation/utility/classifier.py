"""A small 3-D CNN for the utility test, and its training and scoring on clip tensors.

Deliberately small (about 60 k parameters; a few minutes on a CPU at demo scale): the
utility test compares the *same* model trained on generated and on real clips, so its
absolute accuracy matters less than the gap.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ClipClassifier", "FitResult", "fit_and_score"]


class ClipClassifier(nn.Module):
    """x: B×3×F×S×S in [-1, 1] -> B×outputs (class logits, or one value for regression)."""

    def __init__(self, outputs: int, width: int = 16) -> None:
        super().__init__()

        def block(cin, cout, pool):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.SiLU(),
                                 nn.MaxPool3d(pool))

        self.features = nn.Sequential(block(3, width, (1, 2, 2)), block(width, 2 * width, 2),
                                      block(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


@dataclasses.dataclass
class FitResult:
    score: float  # accuracy, or R²
    metric: str  # "accuracy" or "r2"
    final_loss: float
    predictions: list


def _targets(labels: list, classes: list | None) -> Tensor:
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        return torch.tensor([index[v] for v in labels])
    return torch.tensor([float(v) for v in labels])


def fit_and_score(train_x: Tensor, train_labels: list, test_x: Tensor, test_labels: list, classes: list | None,
                  steps: int = 300, batch_size: int = 16, lr: float = 3e-3, seed: int = 0,
                  device: str = "cpu", shuffle_labels: bool = False) -> FitResult:
    """Train :class:`ClipClassifier` on ``train_*`` and score it on ``test_*``.

    classes: the class list (classification) or None (regression on standardised targets, scored by R²).
    shuffle_labels: permute the training labels (a control whose score must be at chance).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    y = _targets(train_labels, classes)
    if shuffle_labels:
        y = y[torch.randperm(len(y), generator=gen)]
    mean, std = (0.0, 1.0) if classes is not None else (float(y.mean()), float(y.std().clamp_min(1e-8)))
    model = ClipClassifier(len(classes) if classes is not None else 1).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_value = float("nan")
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (min(batch_size, len(y)),), generator=gen)
        x = train_x[idx].to(device)
        flip = torch.rand(x.shape[0], generator=gen) < 0.5  # horizontal flips: the label never depends on them
        x = torch.where(flip.view(-1, 1, 1, 1, 1).to(device), x.flip(-1), x)
        out = model(x)
        target = y[idx].to(device)
        loss = F.cross_entropy(out, target) if classes is not None else F.mse_loss(out[:, 0], (target - mean) / std)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(chunk.to(device)).cpu() for chunk in test_x.split(64)])
    truth = _targets(test_labels, classes)
    if classes is not None:
        pred = out.argmax(1)
        return FitResult(float((pred == truth).float().mean()), "accuracy", loss_value,
                         [classes[i] for i in pred.tolist()])
    pred = out[:, 0] * std + mean
    r2 = 1 - float(((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum().clamp_min(1e-12))
    return FitResult(r2, "r2", loss_value, pred.tolist())
