"""Schema of ``cond:`` — modality and text conditioning."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class CondConfig:
    modality: bool = False
    modalities: List[str] = field(default_factory=list)  # empty: taken from the data set
    text: bool = False
    text_encoder: Optional[str] = None  # local folder with a T5 encoder (from_pretrained)
    max_tokens: int = 120
    dropout: float = 0.1
    template: str = "This is a {modality} video."
    use_template: bool = False  # Bora stage 1: every caption replaced by the template
