"""Question files: the shipped one, errors naming file and key, answer validation, JSON round trip."""
from __future__ import annotations

import pytest

from medsora.reader_study.__main__ import DEFAULT_QUESTIONS
from medsora.reader_study.questions import (QuestionError, load_questions, questions_from_json, questions_to_json,
                                            validate_answers)


def test_shipped_questions():
    qs = load_questions(DEFAULT_QUESTIONS)
    assert [(q.id, q.kind, q.required) for q in qs] == [("origin", "choice", True), ("realism", "scale", True),
                                                        ("note", "text", False)]
    assert qs[1].points == [1, 2, 3, 4, 5] and qs[1].labels[1] == "clearly artificial"
    assert questions_from_json(questions_to_json(qs)) == qs


@pytest.mark.parametrize("body, message", [
    ("questions:\n  - {id: q, kind: choice, text: x, options: [a, b], colour: red}", r"questions\[0\]\.colour: unknown key"),
    ("questions:\n  - {id: q, kind: slider, text: x}", r"questions\[0\]\.kind: 'slider' is not one of"),
    ("questions:\n  - {id: origin, kind: choice, text: x, options: [a, b]}", r"questions\[0\]\.options: the 'origin'"),
    ("questions:\n  - {id: q, kind: choice, text: x, options: [yes, no]}", r"questions\[0\]\.options: YAML reads yes"),
    ("questions:\n  - {id: s, kind: scale, text: x, min: 5, max: 1}", r"questions\[0\]\.min/max"),
    ("questions:\n  - {id: s, kind: text, text: x, options: [a]}", r"questions\[0\]\.options: not a key of a text"),
    ("questions:\n  - {id: a, kind: text, text: x}\n  - {id: a, kind: text, text: y}", "id 'a' appears twice"),
    ("asks: []", "exactly one top-level key 'questions'"),
])
def test_bad_question_files_name_file_and_key(tmp_path, body, message):
    path = tmp_path / "q.yaml"
    path.write_text(body)
    with pytest.raises(QuestionError, match=message) as err:
        load_questions(path)
    assert str(err.value).startswith(str(path))
    with pytest.raises(QuestionError, match="not found"):
        load_questions(tmp_path / "missing.yaml")


def test_validate_answers():
    qs = load_questions(DEFAULT_QUESTIONS)
    assert validate_answers(qs, {"origin": "real", "realism": "5", "note": "  "}) == ({"origin": "real", "realism": 5}, {})
    answers, errors = validate_answers(qs, {"origin": "fake", "realism": "0", "note": "x" * 2001})
    assert answers == {} and set(errors) == {"origin", "realism", "note"}
    assert set(validate_answers(qs, {})[1]) == {"origin", "realism"}

