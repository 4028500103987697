"""The reader's pages (Starlette TestClient): blindness, answer storage, validation, resume, isolation, the lock."""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medsora.reader_study.app import COOKIE, create_app
from medsora.reader_study.db import ReaderStore, StudyError, reader_order
from medsora.reader_study.serve import ServeLock

ITEM = re.compile(r'name="item" value="([^"]+)"')


@pytest.fixture
def store(fresh_study) -> ReaderStore:
    return ReaderStore(fresh_study)


@pytest.fixture
def app(store, tmp_path):
    store.export_videos(tmp_path / "clips")
    return create_app(store, tmp_path / "clips")


def _login(app, name: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    r = client.post("/start", data={"name": name}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/next"
    return client


def _current(client: TestClient) -> tuple[str, str]:
    page = client.get("/next").text
    return ITEM.search(page).group(1), page


def _truth(db: Path) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return {tok: (origin, src) for tok, origin, src in conn.execute(
            "SELECT i.token, t.origin, t.source FROM items i JOIN truth t ON t.item_id = i.id")}
    finally:
        conn.close()


def _answers(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT r.name, i.token, a.answers FROM answers a JOIN readers r ON r.id = a.reader_id "
                            "JOIN items i ON i.id = a.item_id ORDER BY a.answered").fetchall()
    finally:
        conn.close()


def test_pages_carry_no_hint_of_origin(app, store, fresh_study):
    truth = _truth(fresh_study)
    client = _login(app, "Dr Blind")
    pages = {}
    for _ in range(len(truth)):
        token, page = _current(client)
        pages[token] = page
        urls = re.findall(r'(?:src|href|action)="([^"]+)"', page)
        assert f"/clip/{token}.mp4" in urls
        for url in urls:
            origin, source = truth[token]
            assert origin not in url and Path(source).stem not in url and "endoscopy" not in url
        clip = client.get(f"/clip/{token}.mp4")
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        assert "content-disposition" not in clip.headers
        client.post("/answer", data={"item": token, "origin": "real", "realism": "3"})
    assert "Thank you" in client.get("/next").text
    # a real and a generated item's pages are the same but for the token, the progress and the time
    def normal(page, token):
        page = page.replace(token, "TOKEN")
        page = re.sub(r'name="shown" value="[^"]+"', "", page)
        return re.sub(r"(Clip \d+ of|value=\"\d+\" max=|\d+ answered)", "", page)

    by_origin = {truth[t][0]: normal(p, t) for t, p in pages.items()}
    assert by_origin["real"] == by_origin["generated"]


def test_answers_are_stored_exactly_and_once(app, fresh_study):
    client = _login(app, "Alice")
    token, _ = _current(client)
    r = client.post("/answer", data={"item": token, "origin": "generated", "realism": "2", "note": " odd motion "},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/next"
    again = client.post("/answer", data={"item": token, "origin": "real", "realism": "5"}, follow_redirects=False)
    assert again.status_code == 303  # a double submit keeps the first answer
    rows = _answers(fresh_study)
    assert [(n, t, json.loads(a)) for n, t, a in rows] == [
        ("Alice", token, {"origin": "generated", "realism": 2, "note": "odd motion"})]


def test_invalid_answer_is_refused_with_a_message_and_not_stored(app, fresh_study):
    client = _login(app, "Bob")
    token, _ = _current(client)
    r = client.post("/answer", data={"item": token, "origin": "maybe", "realism": "9"})
    assert r.status_code == 422
    assert "Please pick one of the options." in r.text and "Please pick a score from 1 to 5." in r.text
    assert ITEM.search(r.text).group(1) == token
    r = client.post("/answer", data={"item": token, "realism": "4"})
    assert r.status_code == 422 and "Please answer this question." in r.text
    assert _answers(fresh_study) == []


def test_resume_and_per_reader_order(app, store):
    alice = _login(app, "Alice")
    seen = []
    for _ in range(5):
        token, page = _current(alice)
        seen.append(token)
        alice.post("/answer", data={"item": token, "origin": "real", "realism": "4"})
    token, page = _current(alice)
    assert "Clip 6 of 16" in page
    # closing the browser (a new client without the cookie) and typing the name again resumes
    again = _login(app, " alice ")
    assert _current(again)[0] == token
    reader = store.reader("Alice")
    order = [store.tokens[i] for i in reader_order(store.seed, reader.id, store.item_ids)]
    assert seen + [token] == order[:6]
    bob = store.reader("Bob")
    assert reader_order(store.seed, bob.id, store.item_ids) != reader_order(store.seed, reader.id, store.item_ids)


def test_readers_see_neither_truth_nor_each_other(app, fresh_study):
    paths = {getattr(r, "path", None) for r in app.routes}
    assert paths == {"/", "/start", "/next", "/answer", "/clip/{name}", "/leave"}
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    token = next(iter(_truth(fresh_study)))
    assert anonymous.get(f"/clip/{token}.mp4").status_code == 404
    for path in ("/docs", "/openapi.json", "/redoc", f"/clip/{token}", "/clip/..%2Fstudy.db"):
        assert anonymous.get(path).status_code == 404
    alice = _login(app, "Alice")
    a_token, _ = _current(alice)
    alice.post("/answer", data={"item": a_token, "origin": "generated", "realism": "1", "note": "secret-note"})
    bob = _login(app, "Bob")
    for _ in range(3):
        token, page = _current(bob)
        assert "secret-note" not in page and "Alice" not in page
        bob.post("/answer", data={"item": token, "origin": "real", "realism": "5"})
    assert bob.cookies[COOKIE] != alice.cookies[COOKIE]


def test_second_serve_is_refused_while_the_first_runs(fresh_study):
    with ServeLock(fresh_study, "http://127.0.0.1:1"):
        with pytest.raises(StudyError, match=r"already being served \(pid \d+ at http://127.0.0.1:1\)"):
            with ServeLock(fresh_study, "http://127.0.0.1:2"):
                pass
    with ServeLock(fresh_study, "http://127.0.0.1:3"):  # free again once the first is gone
        pass
