"""Frozen helper networks (VAE, flow teacher) held beside a LightningModule, not inside it.

Registered submodules would be saved in every checkpoint, swept by the optimiser filter, and
deep-copied by the EMA callback (``AveragedModel`` copies the whole LightningModule). A
:class:`Frozen` holder keeps the network out of ``state_dict``/``parameters()``, is shared (not
copied) by ``copy.deepcopy``, and moves the network to the device where it is used.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Frozen"]


class Frozen:
    """Holds a frozen ``nn.Module`` in eval mode with gradients off.

    Args:
        module: the network (its ``train()`` is never called again).
    """

    def __init__(self, module: nn.Module):
        self.module = module.requires_grad_(False).eval()

    def __deepcopy__(self, memo) -> "Frozen":
        return self

    def on(self, device: torch.device | str) -> nn.Module:
        """The network on ``device`` (moved there once, on first use)."""
        device = torch.device(device)
        current = next(iter(self.module.parameters()), None)
        if current is not None and current.device != device:
            self.module.to(device)
        return self.module
