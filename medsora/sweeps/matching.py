"""Parameter-matched ablations: size each baseline to the parameter count of a reference variant.

A sweep with ``match_params: VARIANT`` compares architectures, not sizes: every other variant whose
backbone is more than ``tolerance`` (±5 %) away from ``VARIANT``'s parameter count is re-sized —
first its width (``model.hidden``, in steps that keep heads, sin-cos positions and Mamba heads
valid), and only when no width lands within the tolerance also its depth (the depth nearest the
original for which some width does). Counts are taken on the meta device (nothing allocated).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

from medsora.backbone.cost import count_parameters
from medsora.config import ConfigError

__all__ = ["width_step", "match_size", "match_parameters"]

MAX_WIDTH_FACTOR = 8  # widths searched up to this multiple of the original


def width_step(model_cfg) -> int:
    """The smallest change of ``model.hidden`` that keeps every divisibility the blocks need."""
    step = math.lcm(4, int(model_cfg.heads))  # sin-cos positions need /4; attention needs /heads
    if any("mamba" in kind for kind in model_cfg.blocks):
        expand, headdim = int(model_cfg.expand), int(model_cfg.headdim)
        step = math.lcm(step, headdim // math.gcd(expand, headdim))  # hidden·expand divisible by headdim
    return step


def _best_width(model_cfg, in_channels: int, depth: int, target: int, step: int) -> tuple[int, int]:
    """(hidden, params) with params nearest ``target`` at ``depth`` (params grow with width: bisection)."""
    lo, hi = 1, max(2, MAX_WIDTH_FACTOR * int(model_cfg.hidden) // step)

    @functools.lru_cache(maxsize=None)
    def count(k: int) -> int:
        return count_parameters(model_cfg, in_channels, hidden=k * step, depth=depth)

    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [(abs(count(k) - target), k) for k in (lo - 1, lo) if k >= 1]
    _, k = min(candidates)
    return k * step, count(k)


def match_size(model_cfg, in_channels: int, target: int, tolerance: float = 0.05) -> Optional[dict]:
    """``{"hidden", "depth", "params"}`` within ``tolerance`` of ``target``, or None if nothing fits.

    Width first at the original depth; then depths in order of distance from the original.
    """
    step = width_step(model_cfg)
    depth0 = int(model_cfg.depth)
    depths = [depth0] + sorted((d for d in range(1, 4 * depth0 + 3) if d != depth0), key=lambda d: (abs(d - depth0), d))
    for depth in depths:
        hidden, params = _best_width(model_cfg, in_channels, depth, target, step)
        if abs(params - target) <= tolerance * target:
            return {"hidden": hidden, "depth": depth, "params": params}
    return None


def match_parameters(configs: dict, reference: str, tolerance: float = 0.05) -> dict[str, list[str]]:
    """Extra overrides per variant so every backbone is within ``tolerance`` of ``reference``'s size.

    Args:
        configs: ``{variant: composed config}`` (diffusion stage).
        reference: the variant whose parameter count the others match.
    Returns:
        ``{variant: ["model.hidden=…", "model.depth=…"]}`` for the re-sized variants only.
    Raises:
        ConfigError: ``reference`` is not a variant, or a variant cannot be matched.
    """
    if reference not in configs:
        raise ConfigError(f"match_params: '{reference}' is not a variant of this sweep (variants: {sorted(configs)})")
    ref = configs[reference]
    target = count_parameters(ref.model, ref.vae.latent_channels)
    out: dict[str, list[str]] = {}
    for name, cfg in configs.items():
        own = count_parameters(cfg.model, cfg.vae.latent_channels)
        if name == reference or abs(own - target) <= tolerance * target:
            continue
        found = match_size(cfg.model, cfg.vae.latent_channels, target, tolerance)
        if found is None:
            raise ConfigError(f"match_params: variant '{name}' ({own / 1e6:.3f} M parameters) cannot be sized to within "
                              f"{tolerance:.0%} of '{reference}' ({target / 1e6:.3f} M) by width and depth")
        out[name] = [f"model.hidden={found['hidden']}"] + ([f"model.depth={found['depth']}"]
                                                          if found["depth"] != int(cfg.model.depth) else [])
    return out
