"""FVD through a TorchScript detector with i3d_torchscript.pt's call signature; FID/IS through torchmetrics."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from medsora.metrics.fid import FID, InceptionScoreMetric, load_inception
from medsora.metrics.frechet import frechet_distance, gaussian_stats
from medsora.metrics.fvd import FVD, load_i3d
from medsora.metrics.weights import MissingWeights, resolve_weights


class TinyI3D(nn.Module):
    """Random stand-in with the I3D TorchScript's forward(x, rescale, resize, return_features)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 16, kernel_size=(2, 4, 4), stride=(2, 4, 4))
        self.fc = nn.Linear(16, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if not (rescale and resize and return_features):
            raise RuntimeError("FVD must call the detector with rescale=True, resize=True, return_features=True")
        if x.dtype != torch.uint8:
            raise RuntimeError("StyleGAN-V hands uint8 clips to the detector")
        x = x.float() * (2.0 / 255.0) - 1.0
        # The real detector resizes to 224×224 here; 32 keeps the test fast.
        x = F.interpolate(x, size=(x.shape[2], 32, 32), mode="trilinear", align_corners=False)
        logits = self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3, 4)))
        return logits if return_features else logits.softmax(-1)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # torch.jit.script is deprecated, but the real I3D is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(TinyI3D().eval()).save(str(path))
    return path


def _videos(n: int, frames: int = 16, shift: int = 0, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 180, (n, frames, 32, 40, 3), generator=g)
    return list((base + shift).clamp(0, 255).to(torch.uint8))


def test_fvd_self_zero_shifted_positive_and_short_videos_discarded(i3d_file):
    detector = load_i3d(i3d_file)
    real, shifted = _videos(6, seed=1), _videos(6, seed=1, shift=60)

    def fvd(fake, extra_short=0):
        metric = FVD(detector, num_frames=16, batch_size=4)
        for v in real:
            metric.update(v, {}, real=True)
        for v in fake:
            metric.update(v, {}, real=False)
        for _ in range(extra_short):
            metric.update(torch.zeros(8, 32, 40, 3, dtype=torch.uint8), {}, real=False)
        return metric.compute()

    same = fvd(real, extra_short=2)
    assert abs(same["fvd"]) < 1e-6
    assert same["fvd_clips_fake"] == 6 and same["fvd_discarded_short"] == 2
    assert fvd(shifted)["fvd"] > 1e-3


def test_fvd_uses_only_the_first_clip_frames(i3d_file):
    detector = load_i3d(i3d_file)
    short = _videos(3, frames=16, seed=2)
    longer = [torch.cat([v, torch.full((8, 32, 40, 3), 255, dtype=torch.uint8)]) for v in short]
    metric = FVD(detector, num_frames=16)
    for a, b in zip(short, longer):
        metric.update(a, {}, real=True)
        metric.update(b, {}, real=False)
    assert abs(metric.compute()["fvd"]) < 1e-6


def test_fvd_too_few_videos_is_explained(i3d_file):
    metric = FVD(load_i3d(i3d_file), num_frames=16)
    metric.update(_videos(1)[0], {}, real=True)
    with pytest.raises(ValueError, match="at least 2 real videos"):
        metric.compute()


def test_missing_i3d_names_file_and_source(tmp_path):
    with pytest.raises(MissingWeights, match=r"i3d_torchscript\.pt.*(?s:.*)stylegan|i3d_torchscript\.pt.*dropbox"):
        resolve_weights("i3d", weights_dir=tmp_path)


class TinyFrameNet(nn.Module):
    """uint8 N×3×H×W -> N×8 features; random weights are enough for the statistics."""

    def __init__(self, out: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, out, 5, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float() / 127.5 - 1)).mean(dim=(2, 3))


def test_fid_self_zero_shifted_positive_and_matches_features():
    net = TinyFrameNet()
    real, shifted = _videos(6, frames=4, seed=3), _videos(6, frames=4, seed=3, shift=70)

    def fid(fake):
        metric = FID(net, max_frames=4, batch_size=5)
        for v in real:
            metric.update(v, {}, real=True)
        for v in fake:
            metric.update(v, {}, real=False)
        return metric.compute()

    assert abs(fid(real)["fid"]) < 1e-6
    result = fid(shifted)
    assert result["fid"] > 1e-3 and result["fid_frames_real"] == 24
    # Same number from the features directly (unbiased covariances).
    with torch.no_grad():
        fr = net(torch.stack(real).flatten(0, 1).permute(0, 3, 1, 2))
        ff = net(torch.stack(shifted).flatten(0, 1).permute(0, 3, 1, 2))
    mu_r, s_r = gaussian_stats(fr)
    mu_f, s_f = gaussian_stats(ff)
    assert result["fid"] == pytest.approx(frechet_distance(mu_r, s_r, mu_f, s_f), rel=1e-6)


def test_inception_score_of_a_constant_classifier_is_one():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, 0.5, -1.0]]).expand(x.shape[0], 3)

    metric = InceptionScoreMetric(Constant(), max_frames=4, splits=2)
    for v in _videos(4, frames=4):
        metric.update(v, {}, real=False)
        metric.update(v, {}, real=True)  # ignored: IS scores the generated set only
    result = metric.compute()
    assert result["is"] == pytest.approx(1.0, abs=1e-6) and result["is_frames"] == 16


def test_inception_score_of_a_confident_diverse_classifier_is_the_class_count():
    class OneHot(nn.Module):
        def forward(self, x):
            classes = x[:, 0, 0, 0].long() % 4
            return F.one_hot(classes, 4).float() * 50

    frames = torch.zeros(8, 4, 8, 8, 3, dtype=torch.uint8)
    frames[:, :, 0, 0, 0] = torch.arange(32).view(8, 4)
    metric = InceptionScoreMetric(OneHot(), max_frames=4, splits=1)
    for v in frames:
        metric.update(v, {}, real=False)
    assert metric.compute()["is"] == pytest.approx(4.0, rel=1e-4)


def test_fid_inception_loads_torch_fidelity_weights_from_a_local_file(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity")
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    # Build the real architecture with random weights once, without its download, and save it as the file.
    with monkeypatch.context() as m:
        m.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        net = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)

    assert resolve_weights("inception", weights_dir=tmp_path) == path
    pool = load_inception(path, "2048")
    loaded = pool.state_dict()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded[key], value)
    assert pool.features_list == ["2048"] and load_inception(path, "logits_unbiased").features_list == ["logits_unbiased"]
