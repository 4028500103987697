"""Throughput of each evaluation metric on CPU, in videos per second.

Every metric runs through ``medsora.metrics.registry.build_metric`` exactly as
``python -m medsora.evaluate`` does, with the real architectures at their real input
sizes but RANDOM weights (nothing can be downloaded here), so the timings are
representative and the values meaningless:

* FVD: an Inception-I3D (the Kinetics-400 architecture of i3d_torchscript.pt, symmetric
  padding instead of TF "same"), TorchScript with the same ``forward(x, rescale, resize,
  return_features)``, resizing clips to 224×224 inside as the real one does;
* FID / IS: torch-fidelity's InceptionV3 (299×299); subject consistency: transformers
  ViT-B/16 (DINO's shape); background consistency: CLIP ViT-B/32 image tower;
* motion smoothness / dynamic degree: torchvision RAFT-large, 20 iterations;
* LPIPS: AlexNet; imaging quality needs pyiqa's MUSIQ and is reported as not measured
  when pyiqa is absent.

Distribution metrics (FVD, FID) consume the real and the generated set, so their rate
counts both; paired metrics count pairs. Times are the median of ``--repeats`` runs
of update + compute over the set, model loading excluded.

    python benchmarks/metrics.py           # 2 videos of 16×128×128 (MedSora's size), 3 repeats, appends to RESULTS.md
    python benchmarks/metrics.py --quick   # 2 videos of 16×64×64, 1 repeat, nothing written
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from machine_info import append_results, describe_machine
from unittest import mock

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


class Unit3D(nn.Sequential):
    def __init__(self, cin: int, cout: int, k=(1, 1, 1), s=(1, 1, 1)) -> None:
        pad = tuple(x // 2 for x in k)
        super().__init__(nn.Conv3d(cin, cout, k, s, pad, bias=False), nn.BatchNorm3d(cout, eps=1e-3), nn.ReLU())


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1 = nn.Sequential(Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3)))
        self.b2 = nn.Sequential(Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3)))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), Unit3D(cin, c[5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


class InceptionI3D(nn.Module):
    """Inception-v1 I3D (Carreira & Zisserman 2017) with the i3d_torchscript.pt calling convention."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Unit3D(3, 64, (7, 7, 7), (2, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            Unit3D(64, 64), Unit3D(64, 192, (3, 3, 3)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            InceptionBlock(192, (64, 96, 128, 16, 32, 32)), InceptionBlock(256, (128, 128, 192, 32, 96, 64)),
            nn.MaxPool3d(3, 2, 1),
            InceptionBlock(480, (192, 96, 208, 16, 48, 64)), InceptionBlock(512, (160, 112, 224, 24, 64, 64)),
            InceptionBlock(512, (128, 128, 256, 24, 64, 64)), InceptionBlock(512, (112, 144, 288, 32, 64, 64)),
            InceptionBlock(528, (256, 160, 320, 32, 128, 128)), nn.MaxPool3d(2, 2),
            InceptionBlock(832, (256, 160, 320, 32, 128, 128)), InceptionBlock(832, (384, 192, 384, 48, 128, 128)),
        )
        self.logits = nn.Conv3d(1024, 400, 1)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x * (2.0 / 255.0) - 1.0
        if resize:
            x = nn.functional.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        h = self.features(x)
        h = nn.functional.avg_pool3d(h, (min(2, h.shape[2]), 7, 7), stride=1)
        logits = self.logits(h).mean(dim=(2, 3, 4))
        return logits if return_features else logits.softmax(-1)


def write_random_weights(folder: Path) -> None:
    """Random-weight stand-ins under the standard names of medsora.metrics.weights.WEIGHTS."""
    import torchvision
    from transformers import CLIPConfig, CLIPModel, ViTConfig, ViTModel

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(InceptionI3D().eval()).save(str(folder / "i3d_torchscript.pt"))
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    # torch-fidelity always loads (or downloads) weights in its constructor; skip that once to get random ones.
    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, s: None):
        inception = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(inception.state_dict(), folder / "weights-inception-2015-12-05-6726825d.pth")
    ViTModel(ViTConfig(patch_size=16), add_pooling_layer=False).save_pretrained(folder / "dino-vitb16")
    CLIPModel(CLIPConfig(vision_config=dict(patch_size=32), projection_dim=512)).save_pretrained(
        folder / "clip-vit-base-patch32")
    torch.save(torchvision.models.optical_flow.raft_large(weights=None).state_dict(),
               folder / "raft_large_C_T_V2-1bb1363a.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), folder / "alexnet-owt-7be5be79.pth")


def run(args) -> list[tuple[str, str, str, str]]:
    from medsora.metrics.base import PairedMetric, PerVideoMetric
    from medsora.metrics.registry import METRICS, EvalOptions, build_metric
    from medsora.metrics.weights import MetricUnavailable

    g = torch.Generator().manual_seed(0)
    shape = (args.frames, args.size, args.size, 3)
    real = [torch.randint(0, 256, shape, generator=g, dtype=torch.uint8) for _ in range(args.videos)]
    fake = [torch.randint(0, 256, shape, generator=g, dtype=torch.uint8) for _ in range(args.videos)]
    meta = {"fps": 8.0}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_random_weights(Path(tmp))
        options = EvalOptions(weights_dir=tmp, device="cpu", batch_size=args.batch_size)
        for name in args.metrics.split(",") if args.metrics else METRICS:
            try:
                build_metric(name, options)
            except MetricUnavailable as err:
                rows.append((name, "not measured", "—", str(err).split(":")[0]))
                continue
            times = []
            for _ in range(args.repeats):
                metric = build_metric(name, options)
                start = time.perf_counter()
                if isinstance(metric, PairedMetric):
                    for r, f in zip(real, fake):
                        metric.update_pair(r, f)
                    count, unit = len(real), "pairs"
                else:
                    for f in fake:
                        metric.update(f, meta, real=False)
                    count, unit = len(fake), "videos"
                    if not isinstance(metric, PerVideoMetric) and metric.uses_real:
                        for r in real:
                            metric.update(r, meta, real=True)
                        count, unit = 2 * len(real), "videos (real + generated)"
                metric.compute()
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            rows.append((name, f"{count / median:.3g}", f"{median:.2f}", f"{count} {unit}"))
            print(f"{name}: {count / median:.3g} videos/s", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 videos of 16×64×64, 1 repeat; RESULTS.md untouched")
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--metrics", help="comma-separated subset (default: all)")
    p.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = p.parse_args(argv)
    if args.quick:
        args.videos, args.size, args.repeats = 2, 64, 1
    rows = run(args)
    table = ["| metric | videos/s | median time (s) | per run |", "|---|---|---|---|"]
    table += [f"| {' | '.join(row)} |" for row in rows]
    text = "\n".join(table)
    print(text)
    if not args.quick:
        command = "python benchmarks/metrics.py " + " ".join(argv if argv is not None else sys.argv[1:])
        section = (f"\n## Evaluation metrics: throughput on CPU\n\n`{command.strip()}`\n\n"
                   f"Machine: {describe_machine()}.\n\n{args.videos} generated (and {args.videos} real) videos of "
                   f"{args.frames}×{args.size}×{args.size}, real architectures with random weights at their real "
                   f"input sizes, median of {args.repeats} runs, model loading excluded.\n\n{text}\n")
        append_results(section, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
