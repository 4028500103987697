"""Field helpers shared by the typed config schemas."""
from __future__ import annotations

import dataclasses
from typing import Any


def choice(default: Any, *choices: Any) -> Any:
    """A dataclass field whose value (or every item of a list value) must be one of ``choices``.

    ``medsora.config.loader`` checks it and names the key and file on a bad value.
    """
    allowed = tuple(choices) if choices else (default,)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"choices": allowed})
    if default is not None and default not in allowed:
        raise ValueError(f"default {default!r} not among {allowed}")
    return dataclasses.field(default=default, metadata={"choices": allowed})
