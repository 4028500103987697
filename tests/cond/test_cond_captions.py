"""Caption policy: manifest captions, template fallback, Bora stage-1 replacement."""
from __future__ import annotations

import pytest

from medsora.cond import check_template, prepare_captions

TEMPLATE = "This is a {modality} video."


def test_captions_kept_and_stripped():
    out = prepare_captions(["  a polyp near the center ", "four-chamber view"], ["endoscopy", "ultrasound"], 2,
                           TEMPLATE)
    assert out == ["a polyp near the center", "four-chamber view"]


def test_empty_or_absent_caption_falls_back_to_template():
    out = prepare_captions(["", "   ", None], ["endoscopy", "mri", "microscopy"], 3, TEMPLATE)
    assert out == ["This is a endoscopy video.", "This is a mri video.", "This is a microscopy video."]
    assert prepare_captions(None, ["ultrasound"], 1, TEMPLATE) == ["This is a ultrasound video."]


def test_template_mode_replaces_every_caption():
    out = prepare_captions(["a polyp", "cells dividing"], ["endoscopy", "microscopy"], 2, TEMPLATE, use_template=True)
    assert out == ["This is a endoscopy video.", "This is a microscopy video."]


def test_no_caption_and_no_modality_means_no_text():
    assert prepare_captions(["", "x"], [None, None], 2, TEMPLATE) == [None, "x"]
    assert prepare_captions(None, None, 2, TEMPLATE, use_template=True) == [None, None]


def test_length_mismatch_and_bad_template_are_reported():
    with pytest.raises(ValueError, match="captions: got 1 entries for a batch of 2"):
        prepare_captions(["a"], None, 2, TEMPLATE)
    with pytest.raises(ValueError, match=r"cond.template .* must contain '\{modality\}'"):
        check_template("A video.")
