"""Statistics: interval coverage on simulated readers, κ on published worked examples, the results report."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from medsora.reader_study.__main__ import main
from medsora.reader_study.db import ReaderStore
from medsora.reader_study.results import study_results
from medsora.reader_study.stats import cohen_kappa, compare_scores, fleiss_kappa, proportion


def _pairs(yy, yn, ny, nn):
    a = ["yes"] * (yy + yn) + ["no"] * (ny + nn)
    b = ["yes"] * yy + ["no"] * yn + ["yes"] * ny + ["no"] * nn
    return a, b


@pytest.mark.parametrize("table, kappa", [
    ((20, 5, 10, 15), 0.4),        # Wikipedia "Cohen's kappa", simple example (50 proposals)
    ((45, 15, 25, 15), 0.1304),    # same article, "same percentages, different numbers", first table
    ((25, 35, 5, 35), 0.2593),     # … second table
])
def test_cohen_kappa_on_published_tables(table, kappa):
    assert cohen_kappa(*_pairs(*table)) == pytest.approx(kappa, abs=5e-5)


def test_fleiss_kappa_on_the_published_example():
    # Wikipedia "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories, κ = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=5e-4)
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 1], [1, 1]])
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement 1: undefined


@pytest.mark.parametrize("p, n", [(0.5, 20), (0.75, 60), (0.9, 100)])
def test_intervals_cover_the_true_rate_of_simulated_readers(p, n):
    rng = np.random.default_rng(0)
    k = rng.binomial(n, p, size=2000)
    ci = {m: {int(x): proportion(int(x), n, method=m)["ci"] for x in np.unique(k)} for m in ("wilson", "exact")}
    wilson = np.array([ci["wilson"][int(x)] for x in k])
    exact = np.array([ci["exact"][int(x)] for x in k])
    cover_w = np.mean((wilson[:, 0] <= p) & (p <= wilson[:, 1]))
    cover_e = np.mean((exact[:, 0] <= p) & (p <= exact[:, 1]))
    assert 0.92 <= cover_w <= 0.98, cover_w      # Wilson: close to nominal
    assert cover_e >= 0.94, cover_e                # Clopper–Pearson: conservative
    assert np.all(exact[:, 1] - exact[:, 0] >= wilson[:, 1] - wilson[:, 0] - 1e-12)


def test_score_comparison():
    out = compare_scores([4, 5, 4, 5, 4], [1, 2, 1, 2, 2])
    assert out["difference"] == pytest.approx(2.8)
    assert out["real"]["value"] == pytest.approx(4.4) and out["generated"]["median"] == 2
    assert out["mannwhitney_p"] < 0.05


def _simulate(db, readers: dict[str, float], seed=0):
    """Readers answering every item, right with their probability; realism 4–5 for real, 1–3 for generated."""
    store = ReaderStore(db)
    conn = sqlite3.connect(db)
    truth = {tok: o for tok, o in conn.execute("SELECT i.token, t.origin FROM items i JOIN truth t ON t.item_id = i.id")}
    conn.close()
    rng = np.random.default_rng(seed)
    given = {}
    for name, accuracy in readers.items():
        reader = store.reader(name)
        for token, origin in sorted(truth.items()):
            right = rng.random() < accuracy
            call = origin if right else ("generated" if origin == "real" else "real")
            score = int(rng.integers(4, 6) if origin == "real" else rng.integers(1, 4))
            store.save_answer(reader, token, {"origin": call, "realism": score}, 3.0)
            given[(name, token)] = (call, origin)
    return given


def test_results_match_the_answers_given(fresh_study):
    given = _simulate(fresh_study, {"r1": 0.8, "r2": 0.7, "r3": 0.9})
    report = study_results(fresh_study)
    block = report["overall"]
    for name in ("r1", "r2", "r3"):
        mine = [(c, o) for (n, _), (c, o) in given.items() if n == name]
        acc = block["readers"][name]["accuracy"]
        assert (acc["k"], acc["n"]) == (sum(c == o for c, o in mine), 16)
        assert acc["ci"][0] < acc["value"] < acc["ci"][1]
    pooled = block["pooled"]["accuracy"]
    assert (pooled["k"], pooled["n"]) == (sum(c == o for c, o in given.values()), 48)
    gen_real = block["pooled"]["generated_judged_real"]
    assert gen_real["n"] == 24 and gen_real["k"] == sum(c == "real" and o == "generated" for c, o in given.values())
    tokens = sorted({t for _, t in given})
    table = [[sum(given[(n, t)][0] == c for n in ("r1", "r2", "r3")) for c in ("real", "generated")] for t in tokens]
    assert block["agreement"] == {"method": "fleiss", "kappa": pytest.approx(fleiss_kappa(table)), "items": 16,
                                  "readers": 3}
    realism = block["pooled"]["scores"]["realism"]
    assert realism["real"]["value"] >= 4 and realism["generated"]["value"] <= 3
    assert set(report["modalities"]) == {"endoscopy", "ultrasound"}
    assert report["modalities"]["endoscopy"]["pooled"]["accuracy"]["n"] == 24
    assert block["reader_mean_accuracy"]["n"] == 3
    assert block["pooled"]["median_seconds"] == 3.0


def test_per_reader_intervals_cover_simulated_readers(fresh_study):
    readers = {f"reader{i:02d}": 0.75 for i in range(20)}
    _simulate(fresh_study, readers, seed=1)
    report = study_results(fresh_study)
    cis = [s["accuracy"]["ci"] for s in report["overall"]["readers"].values()]
    coverage = np.mean([lo <= 0.75 <= hi for lo, hi in cis])
    assert coverage >= 0.8, coverage  # Wilson at n = 16, p = 0.75: about 0.95


def test_results_cli_writes_json_markdown_plot(fresh_study, tmp_path, capsys):
    given = _simulate(fresh_study, {"A": 0.8, "B": 0.6})
    assert main(["results", str(fresh_study), "--out", str(tmp_path / "res")]) == 0
    report = json.loads((tmp_path / "res" / "results.json").read_text())
    tokens = sorted({t for _, t in given})
    kappa = cohen_kappa([given[("A", t)][0] for t in tokens], [given[("B", t)][0] for t in tokens])
    assert report["overall"]["agreement"] == {"method": "cohen", "kappa": pytest.approx(kappa), "items": 16,
                                              "readers": 2}
    md = (tmp_path / "res" / "results.md").read_text()
    assert "| **pooled** | 32 |" in md and "Cohen's κ" in md and "## endoscopy" in md
    with Image.open(tmp_path / "res" / "results.png") as image:
        assert image.size[0] > 400 and image.size[1] > 300
    assert "accuracy" in capsys.readouterr().out
    assert main(["results", str(tmp_path / "missing.db"), "--out", str(tmp_path / "x")]) == 2
    assert "no such study database" in capsys.readouterr().err


def test_a_file_that_is_not_a_study_is_named(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    for path in (junk, other, tmp_path / "missing.db"):
        assert main(["results", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"medsora.reader_study: error: {path}: ") and "\n" not in err
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # left as it was
