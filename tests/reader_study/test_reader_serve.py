"""The real server process: a second serve is refused, and kill -9 under concurrent readers loses no acknowledged answer."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

ITEM = re.compile(r'name="item" value="([^"]+)"')


def test_second_serve_of_the_same_study_is_refused(fresh_study, server_factory):
    first = server_factory(fresh_study)
    second = subprocess.run([sys.executable, "-m", "medsora.reader_study", "serve", str(fresh_study), "--port", "1"],
                            capture_output=True, text=True, timeout=120, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])))
    assert second.returncode == 2
    assert f"already being served (pid {first.proc.pid} at {first.url})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert httpx.get(first.url + "/").status_code == 200  # the first one is untouched


def _reader(url: str, name: str, acked: list, stop: threading.Event) -> None:
    """Answer clips until the server dies (or all are answered); record each answer the server acknowledged."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        try:
            client.post("/start", data={"name": name})
            for i in range(16):  # bounded: one pass over the study at most
                if stop.is_set():
                    return
                match = ITEM.search(client.get("/next").text)
                if not match:
                    return
                answer = {"origin": ("real", "generated")[i % 2], "realism": str(1 + i % 5), "note": f"{name}-{i}"}
                r = client.post("/answer", data={"item": match.group(1), **answer}, follow_redirects=False)
                if r.status_code == 303:
                    acked.append((name, match.group(1), answer))
        except httpx.TransportError:
            return  # the server was killed


def test_kill_9_mid_study_loses_no_acknowledged_answer(fresh_study, server_factory):
    server = server_factory(fresh_study)
    acked: list = []
    stop = threading.Event()
    threads = [threading.Thread(target=_reader, args=(server.url, f"reader{i}", acked, stop)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acked) < 12 and time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    server.kill9()  # mid-study: the readers are still posting
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 12
    conn = sqlite3.connect(fresh_study)
    rows = {(n, tok): json.loads(a) for n, tok, a in conn.execute(
        "SELECT r.name, i.token, a.answers FROM answers a JOIN readers r ON r.id = a.reader_id "
        "JOIN items i ON i.id = a.item_id")}
    conn.close()
    for name, token, answer in acked:
        assert rows[(name, token)] == {"origin": answer["origin"], "realism": int(answer["realism"]),
                                       "note": answer["note"]}
    assert len(rows) - len(acked) <= len(threads)  # at most one committed-but-unacknowledged answer per reader
    assert len(rows) < 3 * 16, "the server must have been killed mid-study"
