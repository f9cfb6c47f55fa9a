"""Draw the README's picture: the front of a study's report, as Chromium shows it.

    python docs/report_front.py runs/tune/NAME [--out docs/img/report-front.png]

Writes the study's report.html with `nsr-tune report` into a temporary directory, opens it in
Chromium (Playwright, the dev extra; the browser at /usr/bin/chromium, or $CHROMIUM) and saves
the front section as a PNG. The README's picture comes from the dry run of its
set-up command.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from nsr_tune.cli import main as nsr_tune

_WIDTH = 1200


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", type=Path, help="a study's directory, e.g. runs/tune/NAME")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img" / "report-front.png")
    args = parser.parse_args()
    chromium = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    if not chromium.is_file():
        parser.error(f"no Chromium at {chromium}: install the Debian package chromium or set $CHROMIUM")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        if nsr_tune(["report", str(args.study), "--out", str(report)]) != 0:
            return 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": _WIDTH, "height": 900}, device_scale_factor=1)
            page.goto(report.as_uri())
            page.wait_for_selector("#front .main-svg")
            # From the section's heading to the bottom of the figure: the title above names
            # the study's directory, which says nothing to a reader of the README.
            top = page.locator("h2").first.bounding_box()
            box = page.locator("#front").bounding_box()
            if top is None or box is None:
                raise RuntimeError(f"{report}: the front section has no box to draw")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(args.out),
                clip={
                    "x": 0,
                    "y": top["y"] - 8,
                    "width": _WIDTH,
                    "height": box["y"] + box["height"] - top["y"] + 16,
                },
            )
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
