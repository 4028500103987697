"""The encode cache: VAE posterior statistics and flow targets, precomputed by ``python -m medsora.encode``.

Layout under ``data.cache``::

    manifest.json                      what made the cache (fingerprint), splits, shard plan
    <split>/shard-00000.safetensors    latent_mean, latent_std  N×C×T×h×w;  flow  N×T×h×w×D
                                       optional T5 caption features: text_hidden ΣL_i×D (the
                                       real tokens of every item, concatenated), text_offsets N+1
                                       metadata "records": JSON [{caption, modality, path,
                                       attributes}, ...] (attributes: the clip's manifest columns, JSON)

The manifest's ``"text"`` entry (``None`` without features) says which T5, token limit and
template made the caption features; :func:`check_text_features` compares it with a run.

Shards are written atomically (temporary file + rename), so a shard that exists is complete;
an interrupted encode resumes by skipping them. Latents are stored *unscaled* (the raw
posterior); multiply samples by :attr:`CacheDataset.scaling_factor` before diffusion.

A cache is tied to what produced it. :func:`medsora.encoding.fingerprint.run_fingerprint`
describes that for a run config (the data package knows no model or teacher: the VAE and
teacher parts of the fingerprint belong to the encode stage); :class:`CacheDataset` refuses a
cache whose manifest disagrees with what the run expects (:class:`StaleCacheError`, listing
each difference).
"""
from __future__ import annotations

import bisect
import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, default_collate

CACHE_VERSION = 1
MANIFEST = "manifest.json"
TENSOR_KEYS = ("latent_mean", "latent_std", "flow")
TEXT_KEYS = ("text_hidden", "text_offsets")
RECORD_KEYS = ("caption", "modality", "path", "attributes")
INT_RECORD_KEYS = ("clip",)  # optional per-item integers (which clip of its video)

# data.* keys that change which pixels reach the VAE and the teacher.
DATA_KEYS = ("root", "manifest", "size", "crop", "num_frames", "frame_stride", "adaptive_interval",
             "threshold_k", "max_stride", "short_videos", "nifti_axis", "nifti_slice", "intensity_percentiles",
             "val_fraction", "clips_per_video")
DEMO_KEYS = ("demo_clips", "demo_seed")


class StaleCacheError(ValueError):
    """The cache was made by something other than what this run expects."""


class IncompleteCacheError(FileNotFoundError):
    """The cache's manifest lists shards that are not written yet."""


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def data_fingerprint(data_cfg) -> dict:
    """The ``data:`` settings that determine the cached clips (JSON-ready values)."""
    keys = DATA_KEYS + (DEMO_KEYS if data_cfg.root == "demo" else ())
    found = {key: _plain(data_cfg[key]) for key in keys}
    if data_cfg.root == "demo":
        from medsora.data.demo import DEMO_VERSION

        found["demo_version"] = DEMO_VERSION  # another demo version has other files or columns
    return found


def fingerprint_differences(found: dict, expected: dict, prefix: str = "") -> list[str]:
    """Human-readable differences for every key of ``expected`` that ``found`` lacks or disagrees on."""
    diffs = []
    for key, want in expected.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in found:
            diffs.append(f"{name}: not recorded in the cache, this run expects {want!r}")
        elif isinstance(want, dict) and isinstance(found[key], dict):
            diffs.extend(fingerprint_differences(found[key], want, name))
        elif found[key] != want:
            diffs.append(f"{name}: cache has {found[key]!r}, this run expects {want!r}")
    return diffs


def shard_path(root: str | os.PathLike, split: str, index: int) -> Path:
    """File of shard ``index`` of ``split``."""
    return Path(root) / split / f"shard-{index:05d}.safetensors"


def shard_plan(num_items: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` item ranges of the shards of a split."""
    return [(s, min(s + shard_size, num_items)) for s in range(0, num_items, shard_size)]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a cache; a clear error when there is none."""
    path = Path(root).expanduser() / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"data.cache={root}: no {MANIFEST} there. Build the cache with "
            f"`python -m medsora.encode experiment=NAME vae.ckpt=PATH data.cache={root}`, or unset data.cache "
            "to train from videos."
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("version") != CACHE_VERSION:
        raise StaleCacheError(f"{path}: cache format version {manifest.get('version')!r}, this code reads "
                              f"{CACHE_VERSION}; rebuild it with python -m medsora.encode")
    return manifest


def write_manifest(root: str | os.PathLike, manifest: dict) -> None:
    """Write ``manifest.json`` atomically."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(root / MANIFEST, json.dumps({"version": CACHE_VERSION, **manifest}, indent=2, sort_keys=True))


def write_shard(path: Path, tensors: dict[str, torch.Tensor], records: list[dict],
                text: Optional[list[torch.Tensor]] = None) -> None:
    """Write one shard atomically.

    Args:
        tensors: :data:`TENSOR_KEYS`, sharing a leading item axis.
        records: one ``{caption, modality, path, attributes}`` per item (attributes: JSON text of the
            clip's manifest columns; absent = none).
        text: optional T5 features per item, ``L_i×D`` (``L_i`` may be 0: no text).
    """
    n = len(records)
    for key in TENSOR_KEYS:
        if key not in tensors or tensors[key].shape[0] != n:
            raise ValueError(f"shard {path}: '{key}' must hold {n} items")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = {k: tensors[k].detach().contiguous().cpu() for k in TENSOR_KEYS}
    if text is not None:
        if len(text) != n or len({t.shape[-1] for t in text}) != 1 or any(t.dim() != 2 for t in text):
            raise ValueError(f"shard {path}: text must be {n} tensors L_i×D of one width D")
        lengths = torch.tensor([0] + [t.shape[0] for t in text], dtype=torch.int64)
        payload["text_hidden"] = torch.cat([t.detach().cpu() for t in text]).contiguous()
        payload["text_offsets"] = lengths.cumsum(0)
    meta = [{**{k: str(r.get(k, "{}" if k == "attributes" else "")) for k in RECORD_KEYS},
             **{k: int(r[k]) for k in INT_RECORD_KEYS if k in r}} for r in records]
    save_file(payload, str(tmp), metadata={"records": json.dumps(meta)})
    os.replace(tmp, path)


def shard_items(path: Path) -> int:
    """Number of items in a written shard (reads the header only); -1 when unreadable."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return len(json.loads(fh.metadata()["records"]))
    except Exception:  # a foreign or truncated file is simply not a finished shard
        return -1


class CacheDataset(Dataset):
    """Items of one split of an encode cache.

    Args:
        cache_root: the ``data.cache`` folder.
        split: ``train`` or ``val`` (any split the manifest lists).
        expect: the fingerprint this run needs (e.g. ``medsora.encoding.fingerprint.run_fingerprint``);
            only the keys given are checked. ``None`` checks nothing.
    Items:
        ``{"latent_mean": C×T×h×w, "latent_std": C×T×h×w, "flow": T×h×w×D`` (float32, whatever
        the stored dtype), ``"caption": str, "modality": str, "path": str, "attributes": str}``
        (attributes: the clip's manifest columns as JSON; ``"{}"`` in caches written before them), and
        ``"text_hidden": L×D`` when the cache has caption features (:attr:`has_text`;
        batch them with :func:`collate_items`).
    An item whose tensors hold NaN/Inf is bad data: it is named in a warning (once), counted in
    :attr:`bad_items` (shared by DataLoader workers) and replaced by the next good item, so it
    reaches neither training nor the validation metrics; more than ``max_bad_fraction`` of the
    split bad stops the run (:class:`medsora.data.table.DataError`).

    Raises:
        StaleCacheError: the manifest disagrees with ``expect`` (every difference is listed).
        IncompleteCacheError: shards of the split are missing.
    """

    def __init__(self, cache_root: str | os.PathLike, split: str = "train", expect: Optional[dict] = None,
                 max_bad_fraction: float = 0.05):
        self.root = Path(cache_root).expanduser()
        self.manifest = read_manifest(self.root)
        if expect:
            diffs = fingerprint_differences(self.manifest.get("fingerprint", {}), expect)
            if diffs:
                raise StaleCacheError(
                    f"data.cache={self.root} is stale for this run:\n  - " + "\n  - ".join(diffs)
                    + "\nRe-encode into a new folder (python -m medsora.encode ... data.cache=NEW_DIR) or point "
                    "data.cache at a cache made with these settings."
                )
        splits = self.manifest["splits"]
        if split not in splits:
            raise KeyError(f"data.cache={self.root}: no split '{split}' (cache has {sorted(splits)})")
        plan = shard_plan(splits[split]["num_items"], splits[split]["shard_size"])
        self.shards = [shard_path(self.root, split, i) for i in range(len(plan))]
        missing = [p.name for p in self.shards if not p.is_file()]
        if missing:
            raise IncompleteCacheError(
                f"data.cache={self.root}: {len(missing)} of {len(plan)} '{split}' shards are not written yet "
                f"(e.g. {missing[0]}); re-run the same python -m medsora.encode command to finish (it resumes)."
            )
        self.starts = [start for start, _ in plan]
        self.num_items = splits[split]["num_items"]
        self.has_text = bool(self.manifest.get("text"))
        self._records: dict[int, list[dict]] = {}
        self.split = split
        self.max_bad_fraction = float(max_bad_fraction)
        self.bad = torch.zeros(self.num_items, dtype=torch.bool).share_memory_()  # items with NaN/Inf

    @property
    def bad_items(self) -> int:
        """Items found to hold NaN/Inf so far (all workers)."""
        return int(self.bad.sum())

    def modalities(self) -> list[str]:
        """Modality names of this split, read from its shards' record headers."""
        names = set()
        for shard in self.shards:
            with safe_open(str(shard), framework="pt") as fh:
                names.update(r["modality"] for r in json.loads(fh.metadata()["records"]) if r.get("modality"))
        return sorted(names)

    @property
    def scaling_factor(self) -> float:
        """The VAE's latent scaling factor (multiply latents by it before diffusion)."""
        return float(self.manifest["scaling_factor"])

    @property
    def fingerprint(self) -> dict:
        """What made this cache."""
        return self.manifest.get("fingerprint", {})

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict:
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for a cache split of {self.num_items} items")
        index %= self.num_items
        for attempt in range(self.num_items):
            position = (index + attempt) % self.num_items
            if bool(self.bad[position]):
                continue
            item = self._item(position)
            if all(bool(torch.isfinite(item[k]).all()) for k in (*TENSOR_KEYS, "text_hidden") if k in item):
                return item
            self._mark_bad(position, item)
        from medsora.data.table import DataError

        raise DataError(f"data.cache={self.root}: every '{self.split}' item holds NaN/Inf values; re-encode the cache")

    def _mark_bad(self, position: int, item: dict) -> None:
        from medsora.data.table import DataError

        self.bad[position] = True
        which = [k for k in (*TENSOR_KEYS, "text_hidden") if k in item and not bool(torch.isfinite(item[k]).all())]
        name = f"{item.get('path')} (clip {item.get('clip', 0)}, {self.split} item {position})"
        warnings.warn(f"bad data: {name} has NaN/Inf in {', '.join(which)}; left out of training and validation",
                      stacklevel=3)
        if self.bad_items > self.max_bad_fraction * self.num_items:
            raise DataError(f"data.cache={self.root}: {self.bad_items} of {self.num_items} '{self.split}' items hold "
                            f"NaN/Inf, more than data.max_bad_fraction = {self.max_bad_fraction:g} (the last: {name}); "
                            "re-encode the cache or check the videos with python -m medsora.data check")

    def _item(self, index: int) -> dict:
        shard = bisect.bisect_right(self.starts, index) - 1
        row = index - self.starts[shard]
        # safetensors memory-maps the file: opening per item is cheap and safe across DataLoader workers.
        with safe_open(str(self.shards[shard]), framework="pt") as fh:
            if shard not in self._records:
                self._records[shard] = json.loads(fh.metadata()["records"])
            item: dict[str, Any] = {key: fh.get_slice(key)[row].float() for key in TENSOR_KEYS}
            if self.has_text:
                start, stop = fh.get_slice("text_offsets")[row:row + 2].tolist()
                item["text_hidden"] = fh.get_slice("text_hidden")[start:stop].float()
        item.update(self._records[shard][row])
        item.setdefault("attributes", "{}")
        return item


def collate_items(items: list[dict]) -> dict:
    """``default_collate``, except that per-item caption features ``L_i×D`` are right-padded.

    Gives ``text_hidden: B×S×D`` (zero at padding) and ``text_mask: B×S`` (True for a real
    token), the layout of :class:`medsora.cond.text_encoder.TextFeatures`.
    """
    if not items or "text_hidden" not in items[0]:
        return default_collate(items)
    text = [item["text_hidden"] for item in items]
    batch = default_collate([{k: v for k, v in item.items() if k != "text_hidden"} for item in items])
    batch["text_hidden"] = pad_sequence(text, batch_first=True)
    lengths = torch.tensor([t.shape[0] for t in text])
    batch["text_mask"] = torch.arange(batch["text_hidden"].shape[1])[None, :] < lengths[:, None]
    return batch


def text_settings(cond_cfg, identity: Optional[str]) -> dict:
    """What makes cached caption features valid for a run: the T5, the token limit and the template."""
    return {"text_encoder": identity, "max_tokens": int(cond_cfg.max_tokens), "template": str(cond_cfg.template)}


def check_text_features(manifest: dict, cond_cfg, identity: Optional[str]) -> bool:
    """Whether a run uses the cache's caption features instead of running T5 on its captions.

    A run uses them when it conditions on full captions (``cond.text`` without
    ``cond.use_template``) and the cache has them. ``identity`` is the run's T5
    (:func:`medsora.cond.text_encoder.text_encoder_identity`; ``None`` = not checkable here).

    Raises:
        StaleCacheError: the features were made with another T5, token limit or template.
    """
    cached = manifest.get("text")
    if not (cond_cfg.text and not cond_cfg.use_template and cached):
        return False
    expected = text_settings(cond_cfg, identity)
    if identity is None or cached.get("text_encoder") is None:
        expected.pop("text_encoder")
    diffs = fingerprint_differences(cached, expected, "text")
    if diffs:
        raise StaleCacheError(
            "the encode cache's caption features were not made for this run:\n  - " + "\n  - ".join(diffs)
            + "\nRe-encode (python -m medsora.encode ... data.cache=NEW_DIR) or match cond.* to the cache."
        )
    return True
