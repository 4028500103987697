"""The no-argument demo: its size and its objective/sampler pairing (issue 19's floor: 64 px, 17 frames)."""
from __future__ import annotations

from medsora.config import compose
from medsora.diffusion import SAMPLERS
from medsora.fit import data_overrides


def test_demo_is_at_least_64px_17_frames_with_a_flow_matching_sampler_that_fits():
    demo = compose("demo")
    assert demo.data.size >= 64 and demo.data.num_frames == 17
    diffusion = compose("diffusion_demo", data_overrides(demo.data))
    grid = diffusion.data.size // 8 // diffusion.model.patch
    assert grid >= 4  # more than a 2×2 token grid per frame
    assert diffusion.diffusion.objective == "flow_matching"
    assert SAMPLERS[diffusion.diffusion.sampler] == "flow_matching" and diffusion.diffusion.sample_steps <= 25
