"""Refresh docs/demo.png: the browser demo on a trained checkpoint, photographed by Chromium.

    python docs/screenshot.py <ckpt> <image> [<image> ...] [--out docs/demo.png]

Starts ``python -m pixelproof.app ckpt_path=<ckpt>`` on a free localhost port, uploads the images
in headless Chromium (Playwright driving Debian's /usr/bin/chromium, as the browser test does),
waits for the verdict and the overlay, and saves a full-page screenshot.
"""

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "demo.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "pixelproof.app", f"ckpt_path={args.ckpt}", f"server_port={port}"]
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if app.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the demo did not start (see its output above)")
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded")
            upload = "#upload input[type=file]"
            page.wait_for_selector(upload, state="attached", timeout=60_000)
            page.set_input_files(upload, [str(i) for i in args.images])
            page.wait_for_function(
                "() => /p\\(fake\\) =/.test(document.querySelector('#verdict')?.innerText || '')",
                timeout=120_000,
            )
            page.wait_for_function(
                "() => { const i = document.querySelector('#overlay img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=60_000,
            )
            page.wait_for_timeout(1000)  # let the charts settle
            page.screenshot(path=str(args.out), full_page=True)
            print(page.inner_text("#verdict"))
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
    print(f"Written: {args.out}")


if __name__ == "__main__":
    main()
