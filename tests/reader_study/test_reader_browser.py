"""End to end in a real headless Chromium (the system's, driven by Playwright): play, answer, reload, resume, kill -9.

Skips, saying why, only where no browser can be had: Playwright not installed, or no Chromium
executable (``apt-get install chromium chromium-driver``; ``MEDSORA_CHROMIUM`` names another).
Playwright never downloads a browser here: it launches the system's executable.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

# Closed network, no GPU, no first-run or background traffic, root in a container (no sandbox).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLAYS = """() => { const v = document.getElementById('clip');
    return v && v.readyState >= 2 && !v.paused && v.loop && v.currentTime > 0.1 && v.videoWidth === 32; }"""


@pytest.fixture
def browser(tmp_path):
    """``open(profile name) -> persistent Chromium context`` with a fresh --user-data-dir per profile name."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser test skipped: Playwright is not installed (pip install -e '.[dev]')")
    executable = os.environ.get("MEDSORA_CHROMIUM") or next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
    if not executable:
        pytest.skip("browser test skipped: no Chromium on this machine (apt-get install chromium chromium-driver, "
                    "or set MEDSORA_CHROMIUM to a Chromium/Chrome executable)")
    contexts = []
    with sync_playwright() as playwright:
        def open_context(profile: str):
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / f"profile-{profile}"), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1000, "height": 640})
            context.set_default_timeout(30_000)
            contexts.append(context)
            return context

        yield open_context
        for context in contexts:
            context.close()


def _answers(db: Path) -> dict[str, dict]:
    conn = sqlite3.connect(db)
    try:
        return {tok: json.loads(a) for tok, a in conn.execute(
            "SELECT i.token, a.answers FROM answers a JOIN items i ON i.id = a.item_id "
            "JOIN readers r ON r.id = a.reader_id WHERE r.name = 'Dr Test'")}
    finally:
        conn.close()


def _answer(page, number: int, given: dict) -> None:
    """Answer the clip on the page (number k of 16) and wait until the next one is shown."""
    token = page.get_attribute("input[name=item]", "value")
    origin = ("real", "generated")[number % 2]
    realism = 1 + number % 5
    page.check(f"input[name=origin][value={origin}]")
    page.check(f"input[name=realism][value='{realism}']")
    answer = {"origin": origin, "realism": realism}
    if number % 3 == 0:
        page.fill("textarea[name=note]", f"note {number}")
        answer["note"] = f"note {number}"
    page.click("#save")
    page.wait_for_selector(f"text=Clip {number + 1} of 16")
    given[token] = answer


@pytest.mark.slow
def test_reader_plays_answers_reloads_resumes(fresh_study, server_factory, browser, tmp_path):
    server = server_factory(fresh_study)
    context = browser("a")
    page = context.new_page()
    page.goto(server.url)
    page.fill("#name", "Dr Test")
    page.click("text=Start")
    page.wait_for_selector("text=Clip 1 of 16")
    page.wait_for_function(PLAYS)  # the H.264 clip decodes and loops in the browser
    given: dict = {}
    for number in range(1, 11):
        _answer(page, number, given)
    current = page.get_attribute("input[name=item]", "value")
    page.reload()
    page.wait_for_selector("text=Clip 11 of 16")
    assert page.get_attribute("input[name=item]", "value") == current
    page.wait_for_function(PLAYS)
    context.close()  # the reader closes the browser …
    page = browser("a").new_page()  # … and opens it again: the cookie brings them back
    page.goto(server.url)
    page.wait_for_selector("text=Clip 11 of 16")
    assert page.get_attribute("input[name=item]", "value") == current
    page = browser("b").new_page()  # another computer: typing the same name resumes too
    page.goto(server.url)
    page.fill("#name", "dr test")
    page.click("text=Start")
    page.wait_for_selector("text=Clip 11 of 16")
    assert _answers(fresh_study) == given and len(given) == 10


def test_kill_9_loses_no_answer_and_the_study_resumes(fresh_study, server_factory, browser):
    server = server_factory(fresh_study)
    page = browser("a").new_page()
    page.goto(server.url)
    page.fill("#name", "Dr Test")
    page.click("text=Start")
    given: dict = {}
    for number in range(1, 4):
        _answer(page, number, given)  # each acknowledged: the browser moved on to the next clip
    server.kill9()
    assert _answers(fresh_study) == given
    left = Path(str(fresh_study) + ".clips")
    assert left.is_dir()  # what the killed server could not clean up …
    restarted = server_factory(fresh_study)  # the kernel freed the serve lock with the killed process
    page.goto(restarted.url + "/next")
    page.wait_for_selector("text=Clip 4 of 16")
    _answer(page, 4, given)
    assert _answers(fresh_study) == given
    restarted.stop()
    assert not left.exists()  # … the next server replaced and, stopping, removed
