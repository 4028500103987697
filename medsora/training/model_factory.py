"""The denoiser a run config asks for: ``model:`` plus the latent width and the OFRA projector."""
from __future__ import annotations


def build_backbone(cfg):
    """``MedSoraDiT`` for a composed run config.

    Input width ``vae.latent_channels``; with ``align.enabled`` the projector taps ``align.tap`` after
    layer ``align.depth`` and maps to the teacher's target width (:func:`medsora.flow.target_dim`).
    Used by the training module and by sweep validation (on the meta device), so both build the same model.

    Raises:
        ValueError: the settings make no model (e.g. ``align.tap`` names a block the pattern lacks).
    """
    from medsora.backbone import MedSoraDiT

    align_dim, layers = None, None
    if cfg.align.enabled:
        from medsora.flow import target_dim
        from medsora.flow.layers import align_layers

        layers = align_layers(cfg.align)
        if cfg.align.projector == "mlp":
            align_dim = target_dim(cfg.align)
    return MedSoraDiT.from_config(
        cfg.model, in_channels=int(cfg.vae.latent_channels), align_dim=align_dim, align_depth=cfg.align.depth,
        align_tap=cfg.align.tap, align_hidden=cfg.align.projector_dim, align_layers=layers,
        align_projector=cfg.align.projector if cfg.align.enabled else "mlp",
    )
