"""Schema of ``align:`` — optical-flow representation alignment (OFRA)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional

from medsora.config.fields import bounded, choice, path_to


@dataclass
class TeacherConfig:
    """The frozen optical-flow teacher (torchvision RAFT) and, for ``flow_image``, its image encoder."""

    arch: str = choice("raft_small", "raft_small", "raft_large")
    # "default" (the arch's torchvision DEFAULT weights, read from the local torch hub cache),
    # a member name of the torchvision enum ("C_T_V2", "C_T_SKHT_V2", ...), a local file path,
    # or "random" (seeded random init: tests and the CPU demo only).
    weights: str = "default"
    seed: int = bounded(0, 0, 2**63 - 1)  # initialisation seed when weights == "random" (keeps cached == online targets)
    iters: int = bounded(12, 1, 1000)  # RAFT refinement iterations
    min_size: int = bounded(128, 8, 8192)  # frames are upsampled so the short side reaches this (RAFT's pyramid needs >= 128)
    chunk: int = bounded(32, 1, 65536)  # frame pairs per RAFT call (bounds memory)
    # target=flow_image: a local image encoder, either a transformers folder (e.g. a saved DINO ViT)
    # a torch.export .pt2 file or a TorchScript file, returning B×D×h×w maps or B×L×D tokens.
    encoder: Optional[str] = path_to("any")
    encoder_size: int = bounded(224, 8, 8192)  # flow images are resized to encoder_size² before the encoder
    # target=flow_image: take the encoder's hidden states of the *matching layers* (align.layers: backbone
    # layer i <-> encoder layer i, MedSora's reference) instead of its last layer alone
    per_layer: bool = False

    @staticmethod
    def checks(c) -> Iterator[tuple[str, str]]:
        """``weights``: a keyword, a torchvision enum member name (checked when the teacher is built) or a file."""
        import re
        from pathlib import Path

        w = str(c.weights)
        if w not in ("default", "random") and not re.fullmatch(r"[A-Z0-9_]+", w) and not Path(w).expanduser().is_file():
            yield "weights", (f"no such file: {Path(w).expanduser().resolve()} (or 'default', 'random', or a "
                              "torchvision enum member such as C_T_V2)")


@dataclass
class AlignConfig:
    """Where the backbone is tapped, what it is aligned to, and how the alignment loss is formed."""

    enabled: bool = True
    weight: float = bounded(0.1, 0.0)  # λ: the loss term "align" already carries it
    target: str = choice("raft_motion", "raft_motion", "flow", "flow_image")
    depth: int = bounded(1, 1, 1024)  # tap hidden states after this layer (1-based)
    # align several layers (1-based; every layer of MedSora-B is [1, ..., 12]); empty = [depth]
    layers: List[int] = field(default_factory=list)
    # "ours": per-token correlation, hinge before the 1/(t+1) weight (margin 0 by default);
    # "reference": MedSora's 1 - Pearson per feature dimension across tokens, averaged over layers,
    # weighted, then the hinge on the weighted mean (margin 0.01) -- see medsora/flow/align_reference.py
    formulation: str = choice("ours", "ours", "reference")
    # "mlp": a learned projector per aligned layer (REPA, ours); "resize": none -- the teacher's
    # tokens x D matrix is bilinearly resized to the hidden's (the reference; formulation=reference only)
    projector: str = choice("mlp", "mlp", "resize")
    # the sub-block of layer `depth` whose output the projector reads (must be in model.blocks)
    tap: str = choice("spatial_mamba", "local_attn", "spatial_mamba", "temporal_mamba", "full_attn", "spatial_attn",
                      "temporal_attn", "cross_attn")
    loss: str = choice("pearson", "pearson", "cosine")
    timestep_weighting: bool = True  # MedSora: per-sample weight 1/(t+1)
    margin: float = bounded(0.0, 0.0)  # hinge: per-token loss below the margin counts as zero (MedSora 0.01)
    projector_dim: Optional[int] = bounded(None, 1, 65536)  # projector MLP width (align_hidden); None = model.projector_hidden
    flow_cells: int = bounded(4, 1, 64)  # target=flow: each token carries a flow_cells×flow_cells sub-grid of flow vectors
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
