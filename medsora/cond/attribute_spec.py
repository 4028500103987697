"""Declared attributes (``cond.attributes``): their specification, value checks and ``--attr`` parsing.

Torch-free, so that composing a config can check the declarations without importing the model code.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from medsora.config.errors import ConfigError

__all__ = ["AttributeSpec", "AttributeValueError", "attribute_specs", "check_dataset", "is_missing",
           "parse_assignments"]


class AttributeValueError(ConfigError):
    """An attribute declaration or value a user can fix (names the attribute, the clip and the fix)."""


def is_missing(value: Any) -> bool:
    """``None``, an empty/blank string (a CSV's empty cell) or NaN: the clip has no value."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""  # not "none": that is a legitimate label (pathology: none)
    return isinstance(value, float) and math.isnan(value)


@dataclass(frozen=True)
class AttributeSpec:
    """One declared attribute.

    Attributes:
        name: the attribute's name (``cond.attributes.<name>``; ``--attr name=value``).
        kind: ``scalar`` or ``label``.
        column: the manifest column holding it.
        low, high: the declared range of a scalar (values outside are refused).
        values: the classes of a label, in index order.
        dropout: probability that this attribute alone is replaced by its null embedding in training.
    """

    name: str
    kind: str
    column: str
    low: float = 0.0
    high: float = 1.0
    values: tuple[str, ...] = ()
    dropout: float = 0.1

    @property
    def key(self) -> str:
        return f"cond.attributes.{self.name}"

    def allowed(self) -> str:
        """What a value may be, for error messages."""
        if self.kind == "scalar":
            return f"a number in [{self.low:g}, {self.high:g}]"
        return "one of " + ", ".join(self.values)

    def parse(self, value: Any, where: str) -> float | int:
        """A present value -> normalised scalar in [0, 1] or label index.

        Raises:
            AttributeValueError: naming ``where`` (the clip or the argument), the attribute and the allowed values.
        """
        if self.kind == "scalar":
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if isinstance(value, bool) or not math.isfinite(number) or not self.low <= number <= self.high:
                raise AttributeValueError(f"{where}: attribute '{self.name}' = {value!r} is not {self.allowed()} "
                                      f"({self.key}.range); fix the value or widen the range")
            return (number - self.low) / (self.high - self.low)
        text = str(value).strip()
        if text not in self.values:
            raise AttributeValueError(f"{where}: attribute '{self.name}' = {value!r} is not {self.allowed()} "
                                  f"({self.key}.values)")
        return self.values.index(text)

    @classmethod
    def from_config(cls, name: str, cfg) -> "AttributeSpec":
        """Build and check one ``cond.attributes.<name>`` entry (``medsora.cond.schema.AttributeConfig``)."""
        key = f"cond.attributes.{name}"
        cfg = {k: cfg[k] for k in ("kind", "column", "range", "values", "dropout")}  # a DictConfig has .values()
        kind = str(cfg["kind"])
        if kind not in ("scalar", "label"):
            raise AttributeValueError(f"{key}.kind = {kind!r} is not one of ['scalar', 'label']")
        if not 0.0 <= float(cfg["dropout"]) < 1.0:
            raise AttributeValueError(f"{key}.dropout = {cfg['dropout']}: must be in [0, 1)")
        column = str(cfg["column"]) if cfg["column"] else name
        low_high, values = list(cfg["range"]), list(cfg["values"])
        if kind == "scalar":
            if len(low_high) != 2 or not float(low_high[0]) < float(low_high[1]):
                raise AttributeValueError(f"{key}.range = {low_high}: a scalar needs [low, high] with low < high, "
                                          "e.g. range: [40, 160] for a heart rate in bpm")
            if values:
                raise AttributeValueError(f"{key}.values is for kind: label; a scalar has a range")
            return cls(name, kind, column, float(low_high[0]), float(low_high[1]), dropout=float(cfg["dropout"]))
        labels = tuple(str(v).strip() for v in values)
        if not labels or len(set(labels)) != len(labels) or any(not v for v in labels):
            raise AttributeValueError(f"{key}.values = {values}: a label needs a non-empty list of distinct "
                                      "values, e.g. values: [none, polyp, colitis]")
        if low_high:
            raise AttributeValueError(f"{key}.range is for kind: scalar; a label has values")
        return cls(name, kind, column, values=labels, dropout=float(cfg["dropout"]))


def attribute_specs(cond_cfg) -> tuple[AttributeSpec, ...]:
    """The declared attributes of a ``cond:`` section, sorted by name (their embedding order)."""
    attributes = getattr(cond_cfg, "attributes", None) or {}
    return tuple(AttributeSpec.from_config(str(name), attributes[name]) for name in sorted(attributes))


def parse_assignments(specs: Sequence[AttributeSpec], assignments: Sequence[str]) -> dict[str, str]:
    """``["heart_rate=60", "pathology=polyp"]`` -> a row ``{column: value}`` checked against ``specs``.

    Raises:
        AttributeValueError: malformed text, an attribute the model does not have, or a value outside its
            range/list (each naming the allowed attributes or values).
    """
    by_name = {s.name: s for s in specs}
    row: dict[str, str] = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise AttributeValueError(f"--attr {text!r}: expected NAME=VALUE, e.g. --attr heart_rate=60")
        if name not in by_name:
            known = ", ".join(f"{s.name} ({s.allowed()})" for s in specs) or "none (cond.attributes is empty)"
            raise AttributeValueError(f"--attr {name}: this model has no attribute '{name}'; its attributes: {known}")
        spec = by_name[name]
        spec.parse(value, f"--attr {name}")
        row[spec.column] = value
    return row


def check_dataset(specs: Sequence[AttributeSpec], rows: Sequence[tuple[str, Optional[Mapping[str, Any] | str]]],
                  source: str) -> dict[str, int]:
    """Check every clip's attributes before training starts.

    Args:
        specs: the declared attributes.
        rows: (clip name, its row: dict of columns or JSON text) for every clip of the data set.
        source: the manifest or cache, for messages.
    Returns:
        Clips without a value, per attribute (they take the null embedding).
    Raises:
        AttributeValueError: a declared column no clip has (naming the key and the columns there are),
            or a value outside its range or list (naming the clip and the attribute).
    """
    parsed = [(where, json.loads(row) if isinstance(row, str) and row else (row if isinstance(row, Mapping) else {}))
              for where, row in rows]
    columns = sorted({c for _, row in parsed for c in row})
    missing = {}
    for spec in specs:
        if parsed and not any(spec.column in row for _, row in parsed):
            raise AttributeValueError(
                f"{spec.key}: no clip of {source} has a '{spec.column}' column (columns: {', '.join(columns) or 'none'}); "
                f"add the column to the manifest or set {spec.key}.column to one of them")
        count = 0
        for where, row in parsed:
            value = row.get(spec.column)
            if is_missing(value):
                count += 1
            else:
                spec.parse(value, where)
        missing[spec.name] = count
    return missing
