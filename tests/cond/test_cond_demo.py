"""The modality-conditioned demo: after a short training, each modality gets its own predictions and samples."""
from __future__ import annotations

import pytest
import torch

from medsora.config import compose
from medsora.fit import fit_stage
from medsora.training.diffusion_module import DiffusionModule

# Attention-only and v-prediction keep this fast: v-prediction makes the modality matter at
# every noise level (at large t the target is ≈ −x0, which only the condition tells apart),
# so a few dozen steps are enough to see it.
TINY = [
    "model.blocks=[local_attn]", "model.depth=1", "model.hidden=32", "model.window=2",
    "vae.latent_channels=4", "align=off", "data.size=32", "data.num_frames=5", "data.batch_size=4",
    "diffusion.prediction_type=v_prediction", "train.lr=3e-3", "train.warmup_steps=0", "train.ema=false",
    "trainer.max_steps=40", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    "trainer.limit_val_batches=0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, modality_cache):
    root = tmp_path_factory.mktemp("cond-demo")
    cfg = compose("cond_demo", [*TINY, f"data.cache={root / 'cache'}", f"out_dir={root / 'runs'}"])
    patterns = modality_cache(cfg)
    module = DiffusionModule(cfg)
    fresh = DiffusionModule(cfg)
    fresh.load_state_dict(module.state_dict())
    fit_stage(cfg, module=module)
    return module.eval(), fresh.eval(), patterns


def _v_losses(module, patterns, t: int, labels):
    sched = module.objective.scheduler
    eps = torch.randn(patterns.shape, generator=torch.Generator().manual_seed(t))
    tt = torch.full((patterns.shape[0],), t)
    xt = sched.add_noise(patterns, eps, tt)
    with torch.no_grad():
        out = module.backbone(xt, tt, **module.cond_encoder(modalities=labels).model_kwargs())
    return ((out - sched.get_velocity(patterns, eps, tt)) ** 2).mean().item(), out


def test_predictions_depend_on_the_modality_only_after_training(trained):
    module, fresh, patterns = trained
    right, wrong = ["endoscopy", "mri"], ["mri", "endoscopy"]
    # adaLN-Zero: a fresh model ignores its condition
    assert torch.equal(_v_losses(fresh, patterns, 800, right)[1], _v_losses(fresh, patterns, 800, wrong)[1])
    for t in (600, 900):  # at small t the noisy input itself shows the modality
        good, out_good = _v_losses(module, patterns, t, right)
        bad, out_bad = _v_losses(module, patterns, t, wrong)
        assert not torch.allclose(out_good, out_bad, atol=1e-2)
        assert good < 0.5 * bad, (t, good, bad)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_samples_follow_their_modality(trained, scale):
    module, _, patterns = trained
    names = ["endoscopy", "mri", "endoscopy", "mri"]
    z = module.generate(4, seed=0, steps=10, modalities=names, guidance_scale=scale, decode=False)
    means = z.mean(dim=(1, 2, 3, 4))
    # endoscopy latents are +1, mri latents −1: each sample lands on its modality's side
    assert (means[0::2] > 0.3).all() and (means[1::2] < -0.3).all(), means
