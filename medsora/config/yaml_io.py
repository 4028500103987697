"""Reading YAML that a user wrote (configs, sweep files): safe, bounded, errors on one line.

``yaml.safe_load`` already refuses Python tags (``!!python/object``), but an *alias bomb* — a few
hundred bytes of nested ``&anchor``/``*alias`` lists — expands into billions of items as soon as
anything walks the loaded tree (OmegaConf copies it into nodes). So a file is parsed into YAML's
node graph first and the size of the tree it would expand to is counted, sharing nothing; above
:data:`MAX_NODES` items (or :data:`MAX_BYTES` of text) it is refused before anything is built.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_BYTES", "MAX_NODES", "YAMLInputError", "load_yaml_text", "read_yaml_file", "yaml_error_line"]

MAX_BYTES = 1 << 20
"""Largest YAML text read (1 MiB; run configs are a few kB)."""
MAX_NODES = 100_000
"""Most scalars, lists and mappings the text may expand to once aliases are followed."""


class YAMLInputError(ValueError):
    """A YAML text that is malformed, unsafe or too large; the message is one line naming the source."""


def yaml_error_line(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` for PyYAML's multi-line error messages."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    text = " ".join(str(problem).split())
    if context:
        text = f"{' '.join(str(context).split())}: {text}"
    if mark is not None:
        text = f"line {mark.line + 1}, column {mark.column + 1}: {text}"
    return text


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Items in the tree below ``node`` with every alias expanded (each distinct node counted once per use)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a node reached again while counting it (a recursive alias) counts once
    if isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        total = 1
    memo[key] = min(total, MAX_NODES + 1)  # saturate: the count only needs to cross the limit
    return memo[key]


def load_yaml_text(text: str, source: str) -> Any:
    """Parse ``text`` with ``yaml.safe_load`` after the size and alias-expansion checks.

    Raises:
        YAMLInputError: naming ``source``: malformed YAML (line and column), a Python tag, more than
            :data:`MAX_BYTES` of text, or more than :data:`MAX_NODES` items once aliases are expanded.
    """
    if len(text) > MAX_BYTES:
        raise YAMLInputError(f"{source}: {len(text)} bytes of YAML, more than the {MAX_BYTES} a config may have")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise YAMLInputError(f"{source}: its aliases (*name) expand to more than {MAX_NODES} items; "
                                 "refused (an alias bomb?): write the values out or use fewer nested aliases")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise YAMLInputError(f"{source}: not valid YAML: {yaml_error_line(err)}") from None


def read_yaml_file(path: str | Path) -> Any:
    """:func:`load_yaml_text` of a file; an unreadable file is a :class:`YAMLInputError` too."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YAMLInputError(f"{path}: {size} bytes of YAML, more than the {MAX_BYTES} a config may have")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise YAMLInputError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    return load_yaml_text(text, str(path))
