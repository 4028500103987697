"""What an encode cache is made from: data settings, the VAE checkpoint, the flow teacher.

``python -m medsora.encode`` writes this fingerprint into the cache's manifest; training from a
cache recomputes it for its own run config and refuses a cache that disagrees
(:func:`medsora.data.cache.fingerprint_differences`). It lives with the encode stage, not in
:mod:`medsora.data`, because it names the teacher and the VAE: the data package knows no model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from medsora.data.cache import data_fingerprint
from medsora.flow.raft_weights import file_sha256
from medsora.flow.teacher import teacher_identity as identity_of

__all__ = ["run_fingerprint"]


def run_fingerprint(cfg, vae_sha256: Optional[str] = None, teacher_identity: Optional[dict] = None) -> dict:
    """What a cache for this run must have been made from (nested dict of plain values).

    Args:
        cfg: a composed run config.
        vae_sha256: SHA-256 of the VAE checkpoint. ``None`` computes it from ``vae.ckpt`` when
            that file exists and leaves it out otherwise (a training run from a cache may not
            have the VAE on this machine: then the VAE is not checked).
        teacher_identity: ``FlowTeacher.identity()``; ``None`` derives it from ``align.teacher``
            without loading the teacher (weights given as a missing file are left unchecked).
    Returns:
        ``{"data": ..., "vae": {"ckpt_sha256"}?, "align": {... , "patch"}}``.
    """
    fp: dict[str, Any] = {"data": data_fingerprint(cfg.data)}
    if vae_sha256 is None and cfg.vae.ckpt and Path(cfg.vae.ckpt).expanduser().is_file():
        vae_sha256 = file_sha256(Path(cfg.vae.ckpt).expanduser())
    if vae_sha256 is not None:
        fp["vae"] = {"ckpt_sha256": vae_sha256}
    if teacher_identity is None:
        t = cfg.align.teacher
        from medsora.flow.layers import align_layers, per_layer_teacher

        teacher_identity = identity_of(cfg.align.target, t.arch, t.weights, t.seed, t.iters, t.min_size,
                                       cfg.align.flow_cells, t.encoder, t.encoder_size,
                                       align_layers(cfg.align) if per_layer_teacher(cfg.align) else ())
        if teacher_identity["weights"].startswith("missing:"):
            del teacher_identity["weights"]
    fp["align"] = {**teacher_identity, "patch": cfg.model.patch}
    return fp
