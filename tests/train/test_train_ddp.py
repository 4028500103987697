"""Two CPU processes (gloo) with batch B train exactly like one process with batch 2B."""
from __future__ import annotations

import pytest
import torch

from medsora.fit import fit_stage


@pytest.mark.parametrize("objective", [(), ("diffusion=flow_matching", "diffusion.sample_steps=4")],
                         ids=["ddpm", "flow_matching"])
def test_two_process_ddp_equals_one_process_on_the_combined_batch(tiny_cfg, objective):
    common = (*objective, "trainer.max_steps=3", "trainer.checkpoint_every_n_steps=100", "trainer.limit_val_batches=0",
              "trainer.log_every_n_steps=1")
    one = fit_stage(tiny_cfg(*common, "data.batch_size=4", "name=one"))
    two = fit_stage(tiny_cfg(*common, "data.batch_size=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                             "name=two"))
    a = torch.load(one.last_ckpt, weights_only=True)
    b = torch.load(two.last_ckpt, weights_only=True)
    assert a["global_step"] == b["global_step"] == 3
    for key in ("current_model_state", "state_dict"):  # raw weights and their EMA
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
