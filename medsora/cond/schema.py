"""Schema of ``cond:`` — modality and text conditioning (Bora recipe, classifier-free guidance)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medsora.config.fields import bounded, choice, path_to


@dataclass
class CondConfig:
    modality: bool = False  # a learned embedding per modality class joins the timestep embedding
    modalities: List[str] = field(default_factory=list)  # class names; empty: taken from the data set's manifest
    text: bool = False  # frozen T5 captions: pooled vector (adaLN) + context tokens (cross_attn blocks)
    text_encoder: Optional[str] = path_to("dir")  # local folder with a T5 encoder + tokenizer (from_pretrained)
    text_dtype: str = choice("float32", "float32", "bfloat16", "float16")  # the frozen T5's weights
    max_tokens: int = bounded(120, 1, 4096)  # Bora/Open-Sora caption length (EOS included); longer captions are truncated
    dropout: float = bounded(0.1, 0.0, 1.0)  # probability that a sample's whole condition is replaced by the null one (CFG)
    null_tokens: int = bounded(8, 1, 4096)  # length of the learned null text sequence that dropped captions become
    template: str = "This is a {modality} video."
    use_template: bool = False  # Bora stage 1: every caption replaced by the template
