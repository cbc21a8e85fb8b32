"""The rendered report opens in a real browser (headless Chromium, when installed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from stepanalytics.reports import RenderedReport

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium is not installed")
def test_first_screen_screenshot(qi_report: RenderedReport, tmp_path: Path) -> None:
    shot = tmp_path / "first_screen.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        qi_report.html.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1280, 900)
        colours = image.convert("L").getcolors(maxcolors=1_000_000)
    # A page that rendered has text and figures: many grey levels, not a blank screen.
    assert colours is not None and len(colours) > 20
