"""Start-up check of the clips' declared attributes (``cond.attributes``): bad values name the clip."""
from __future__ import annotations

import json
import logging

log = logging.getLogger("medsora.fit")

__all__ = ["check_attributes"]


def check_attributes(cfg, dm) -> None:
    """Every clip's declared attributes, checked before training (bad values name the clip); missing ones logged."""
    from safetensors import safe_open

    from medsora.cond.attributes import attribute_specs, check_dataset

    if cfg.data.cache:
        rows, source = [], f"data.cache={cfg.data.cache}"
        for dataset in (dm.train_set, dm.val_set):
            for shard in getattr(dataset, "shards", []):
                with safe_open(str(shard), framework="pt") as fh:
                    rows += [(f"{source}: clip {r['path']}", r.get("attributes") or "{}")
                             for r in json.loads(fh.metadata()["records"])]
    else:
        source = f"the manifest of data.root={cfg.data.root}"
        rows = [(f"{source}: clip {e.key}", e.meta) for e in dm.table.entries]
    missing = check_dataset(attribute_specs(cfg.cond), rows, source)
    for name, count in missing.items():
        if count:
            log.info("cond: attribute '%s' is missing for %d of %d clips; they take its null embedding",
                     name, count, len(rows))
