"""Every experiment in configs/experiment/ composes and takes real optimisation steps (tiny sizes)."""
from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback

from medsora.config import compose, list_configs
from medsora.fit import fit_stage


class Watch(Callback):
    """Parameters at the start and end of training, and every loss."""

    def __init__(self):
        self.start, self.end, self.losses = None, None, []

    @staticmethod
    def _vector(module):
        return torch.nn.utils.parameters_to_vector([p for p in module.parameters() if p.requires_grad]).detach().clone()

    def on_train_start(self, trainer, pl_module):
        self.start = self._vector(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        self.end = self._vector(pl_module)


@pytest.fixture(scope="module")
def tiny_vit_dir(tmp_path_factory):
    """A random 2-layer ViT saved as a transformers folder: the flow-image encoder of the reference OFRA."""
    from transformers import ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("vit")
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8)).save_pretrained(folder)
    return folder


def _experiment_extras(experiment: str, vit) -> list[str]:
    """What an experiment needs beyond the shared tiny overrides (a local encoder, layers within depth 1)."""
    if experiment == "medsora_reference":
        return [f"align.teacher.encoder={vit}", "align.teacher.encoder_size=32", "align.layers=[1]"]
    return []


# experiment=demo (stage: demo) chains vae_demo and diffusion_demo: tests/train/test_train_demo_quality.py
@pytest.mark.parametrize("experiment", [e for e in list_configs("experiment") if e != "demo"])
def test_experiment_takes_optimisation_steps(experiment, tiny_vae_ckpt, tiny_t5_dir, tiny_vit_dir, tmp_path,
                                             run_overrides):
    cfg = compose(experiment, [*run_overrides(tmp_path, tiny_vae_ckpt, tiny_t5_dir),
                               *_experiment_extras(experiment, tiny_vit_dir)])
    watch = Watch()
    result = fit_stage(cfg, callbacks=[watch])
    assert len(watch.losses) == 2 and all(math.isfinite(x) for x in watch.losses)
    assert not torch.equal(watch.start, watch.end)  # the weights moved
    assert torch.load(result.last_ckpt, weights_only=True)["global_step"] == 2


def test_reference_ofra_aligns_every_listed_layer_with_the_matching_encoder_layer(tiny_vae_ckpt, tiny_vit_dir,
                                                                                 tmp_path, run_overrides):
    """align=ofra_reference on a 2-layer model: both layers tapped raw (no projector), the teacher gives the
    ViT's layers 1 and 2 side by side, and the loss takes the reference's formulation."""
    from medsora.flow.align_reference import ReferenceAlignLoss
    from medsora.training.diffusion_module import DiffusionModule

    cfg = compose("medsora_reference", [*run_overrides(tmp_path, tiny_vae_ckpt), "model.depth=2",
                                        *_experiment_extras("medsora_reference", tiny_vit_dir), "align.layers=[1,2]"])
    module = DiffusionModule(cfg)
    assert isinstance(module.align_loss, ReferenceAlignLoss) and module.align_loss.layers == 2
    assert module.backbone.projector is None and module.backbone.align_layers == (1, 2)
    teacher = module._teacher.module
    assert teacher.image_encoder.layers == (1, 2) and teacher.dim == 2 * 16
    x = torch.randn(1, 4, 2, 4, 4)
    _, feats = module.backbone(x, torch.tensor([3]), return_align=True)
    assert feats.shape == (1, 2, 2, 2, 2 * cfg.model.hidden)
    targets = teacher.targets(torch.rand(1, 3, 5, 32, 32) * 2 - 1, (2, 2, 2))
    terms = module.align_loss(feats, targets, torch.tensor([0]))
    assert terms["align"].requires_grad and torch.isfinite(terms["align"])
