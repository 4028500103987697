"""Refusing an encode cache that was made for another run (other data, VAE, flow target or T5)."""
from __future__ import annotations

import logging

__all__ = ["check_cache"]

log = logging.getLogger("medsora.data")


def check_cache(cfg) -> None:
    """Refuse an encode cache made from other data, another VAE or another flow target."""
    from medsora.data.cache import StaleCacheError, fingerprint_differences, read_manifest
    from medsora.encoding.fingerprint import run_fingerprint

    expected = run_fingerprint(cfg)
    if not cfg.align.enabled:
        expected.pop("align", None)  # the flow targets are not used
    manifest = read_manifest(cfg.data.cache)
    diffs = fingerprint_differences(manifest.get("fingerprint", {}), expected)
    if diffs:
        raise StaleCacheError(
            f"data.cache={cfg.data.cache} was not made for this run:\n  - " + "\n  - ".join(diffs)
            + "\nEncode a cache for it (python -m medsora.encode ... data.cache=NEW_DIR) or fix the settings."
        )
    if cfg.cond.text and not cfg.cond.use_template:
        from medsora.cond.text_encoder import text_encoder_identity
        from medsora.data.cache import check_text_features

        if check_text_features(manifest, cfg.cond, text_encoder_identity(cfg.cond.text_encoder)):
            log.info("cond: caption features come from the encode cache (T5 is not run in training)")
        else:
            log.info("cond: the encode cache has no caption features; T5 encodes the captions online")
