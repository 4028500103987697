"""The questions a reader answers for each clip: loaded from YAML, checked, and used to validate answers.

A study file (``configs/study/realism.yaml``) holds ``questions:``, a list of

* ``choice``: ``options`` (a list of values), one picked;
* ``scale``: integers ``min``..``max`` (default 1..5), optional ``labels`` for some points;
* ``text``: free text up to ``max_length`` characters.

Each has an ``id`` (letters, digits, ``_``), the ``text`` shown, and ``required`` (default true
for choice/scale, false for text). The question with id ``origin`` is the one scored against the
hidden truth; its options must be exactly ``real`` and ``generated``.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["Question", "QuestionError", "ORIGIN", "ORIGIN_OPTIONS", "load_questions", "questions_from_json",
           "questions_to_json", "validate_answers"]

ORIGIN = "origin"
ORIGIN_OPTIONS = ("real", "generated")
KINDS = ("choice", "scale", "text")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class QuestionError(ValueError):
    """A question file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Question:
    """One question shown under every clip."""

    id: str
    kind: str
    text: str
    options: tuple[str, ...] = ()
    min: int = 1
    max: int = 5
    labels: dict[int, str] = field(default_factory=dict)
    required: bool = True
    max_length: int = 2000

    @property
    def points(self) -> list[int]:
        """The values of a scale question, in order."""
        return list(range(self.min, self.max + 1))


_FIELDS = {f.name for f in dataclasses.fields(Question)}
_BY_KIND = {"choice": {"options"}, "scale": {"min", "max", "labels"}, "text": {"max_length"}}


def _question(raw: Any, where: str) -> Question:
    if not isinstance(raw, Mapping):
        raise QuestionError(f"{where}: expected a mapping with id, kind, text, got {raw!r}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise QuestionError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(_FIELDS))})")
    for key in ("id", "kind", "text"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise QuestionError(f"{where}.{key}: required, a non-empty string")
    qid, kind = raw["id"], raw["kind"]
    if not _ID.match(qid):
        raise QuestionError(f"{where}.id: {qid!r} must start with a letter and hold only letters, digits and _")
    if kind not in KINDS:
        raise QuestionError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    foreign = sorted((set(raw) & set().union(*_BY_KIND.values())) - _BY_KIND[kind])
    if foreign:
        raise QuestionError(f"{where}.{foreign[0]}: not a key of a {kind} question")
    required = raw.get("required", kind != "text")
    if not isinstance(required, bool):
        raise QuestionError(f"{where}.required: expected true or false, got {required!r}")
    values: dict[str, Any] = {"id": qid, "kind": kind, "text": raw["text"].strip(), "required": required}
    if kind == "choice":
        options = raw.get("options")
        if isinstance(options, list) and any(isinstance(o, bool) for o in options):
            raise QuestionError(f"{where}.options: YAML reads yes/no/on/off/true/false as booleans; quote them "
                                "(options: ['yes', 'no'])")
        if (not isinstance(options, list) or len(options) < 2 or len(set(map(str, options))) != len(options)
                or not all(isinstance(o, str) and o.strip() for o in options)):
            raise QuestionError(f"{where}.options: a list of at least two distinct strings")
        values["options"] = tuple(options)
        if qid == ORIGIN and sorted(options) != sorted(ORIGIN_OPTIONS):
            raise QuestionError(f"{where}.options: the '{ORIGIN}' question is scored against the truth, its options "
                                f"must be {list(ORIGIN_OPTIONS)}")
    elif kind == "scale":
        low, high = raw.get("min", 1), raw.get("max", 5)
        if not (isinstance(low, int) and isinstance(high, int)) or isinstance(low, bool) or high - low < 1 \
                or high - low > 20:
            raise QuestionError(f"{where}.min/max: integers with min < max and at most 21 points, got {low}..{high}")
        labels = raw.get("labels") or {}
        if not isinstance(labels, Mapping) or any(not isinstance(k, int) or not low <= k <= high for k in labels):
            raise QuestionError(f"{where}.labels: a mapping from points in {low}..{high} to text")
        values.update(min=low, max=high, labels={int(k): str(v) for k, v in labels.items()})
    else:
        length = raw.get("max_length", 2000)
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise QuestionError(f"{where}.max_length: a positive integer, got {length!r}")
        values["max_length"] = length
    if qid == ORIGIN and kind != "choice":
        raise QuestionError(f"{where}.kind: the '{ORIGIN}' question must be a choice between real and generated")
    return Question(**values)


def parse_questions(data: Any, source: str) -> list[Question]:
    """Questions from the parsed YAML/JSON ``{"questions": [...]}``; errors name ``source`` and the key."""
    if not isinstance(data, Mapping) or set(data) != {"questions"}:
        keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise QuestionError(f"{source}: expected exactly one top-level key 'questions', got {keys}")
    raw = data["questions"]
    if not isinstance(raw, list) or not raw:
        raise QuestionError(f"{source}: questions: a non-empty list")
    questions = [_question(q, f"{source}: questions[{i}]") for i, q in enumerate(raw)]
    ids = [q.id for q in questions]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise QuestionError(f"{source}: questions: id {dup!r} appears twice")
    return questions


def load_questions(path: str | Path) -> list[Question]:
    """Read and check a question file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise QuestionError(f"--questions: {path} not found (see configs/study/realism.yaml for the format)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise QuestionError(f"{path}: not valid YAML ({err})") from None
    return parse_questions(data, str(path))


def questions_to_json(questions: list[Question]) -> str:
    return json.dumps({"questions": [dataclasses.asdict(q) | {"options": list(q.options)} for q in questions]})


def questions_from_json(text: str) -> list[Question]:
    data = json.loads(text)
    for q in data["questions"]:
        q["labels"] = {int(k): v for k, v in q.get("labels", {}).items()}
    return [Question(**(q | {"options": tuple(q["options"])})) for q in data["questions"]]


def validate_answers(questions: list[Question], form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``(answers, errors)`` from submitted form values (strings) keyed by question id.

    ``answers`` maps each answered question to its value (str for choice/text, int for scale);
    ``errors`` maps question ids to a message for the reader.
    """
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for q in questions:
        value = (form.get(q.id) or "").strip()
        if not value:
            if q.required:
                errors[q.id] = "Please answer this question."
            continue
        if q.kind == "choice":
            if value not in q.options:
                errors[q.id] = "Please pick one of the options."
            else:
                answers[q.id] = value
        elif q.kind == "scale":
            if not value.lstrip("-").isdigit() or not q.min <= int(value) <= q.max:
                errors[q.id] = f"Please pick a score from {q.min} to {q.max}."
            else:
                answers[q.id] = int(value)
        elif len(value) > q.max_length:
            errors[q.id] = f"Please keep this under {q.max_length} characters."
        else:
            answers[q.id] = value
    return answers, errors
