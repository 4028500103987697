"""Take the README's screenshot of the reader-study page with the system's headless Chromium.

    python docs/screenshot_reader_study.py --real REAL --fake FAKE --out docs/reader_study.png

Builds a small study from REAL and FAKE (per modality), serves it on a free 127.0.0.1 port, signs
in a reader, lets the first clip play, answers nothing, and saves the page as a palette PNG
(small enough to commit). Needs Playwright and Chromium (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", required=True)
    p.add_argument("--fake", required=True)
    p.add_argument("--out", default=str(REPO / "docs" / "reader_study.png"))
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="medsora-screenshot-"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    db = tmp / "study.db"
    subprocess.run([sys.executable, "-m", "medsora.reader_study", "create", "--real", args.real, "--fake", args.fake,
                    "--out", str(db), "--n", "8", "--size", "256", "--no-progress",
                    "--title", "Endoscopy reader study"], check=True, env=env, cwd=REPO)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "medsora.reader_study", "serve", str(db), "--port", str(port)],
                              env=env, cwd=REPO)
    try:
        time.sleep(8)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp / "profile"), executable_path=shutil.which("chromium"), headless=True, args=ARGS,
                viewport={"width": 900, "height": 620})
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#name", "Dr Example")
            page.click("text=Start")
            page.wait_for_function("() => document.getElementById('clip').currentTime > 1.0")
            page.check("input[name=origin][value=real]")
            page.check("input[name=realism][value='4']")
            page.screenshot(path=str(tmp / "page.png"))
            context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    image = Image.open(tmp / "page.png").convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(args.out, optimize=True)
    print(f"{args.out}: {Path(args.out).stat().st_size / 1024:.0f} KB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
