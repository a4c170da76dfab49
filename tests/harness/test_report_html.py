"""The HTML report in a real headless browser (Chromium): rendered at 1400 px from the committed
reference run, every image loads and nothing needs horizontal scrolling. CI installs Chromium
(.ci/setup-chromium.sh); elsewhere the test is skipped when there is none."""

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from harness.config import load_benchmarks
from harness.matrix import Planner
from harness.report import build_report, profile_cells, write_report_files
from harness.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = 1400

CHECK = """<script>window.addEventListener('load', () => {
  const images = [...document.images], root = document.documentElement;
  document.body.setAttribute('data-check', JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth}));
});</script>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="no Chromium here (CI installs it)"
)


def browser_check(html: Path) -> dict:
    checked = html.with_name("check.html")
    checked.write_text(html.read_text().replace("</body>", CHECK + "</body>"))
    dom = subprocess.run(
        [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={WINDOW},900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            checked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, "the check script did not run"
    return json.loads(unescape(found.group(1)))


def test_the_html_report_fits_1400_px_and_every_image_loads(tmp_path):
    shutil.copytree(REPO / "results" / "reference" / "tiny" / "stages", tmp_path / "tiny" / "stages")
    workspace = Workspace(tmp_path / "artifacts", tmp_path)
    planner = Planner(load_benchmarks(REPO / "benchmarks.yaml"), "tiny")
    report = build_report(planner.bench, profile_cells(planner, workspace), workspace)
    write_report_files(report, workspace)
    result = browser_check(tmp_path / "tiny" / "report.html")
    # the overview, the paper's tables, a plot per evaluation and a curve per training stage
    assert result["images"] >= 5 + 7 and result["broken"] == []
    assert result["scrollWidth"] <= result["clientWidth"] <= WINDOW, result


def test_the_check_sees_a_broken_image_and_an_overflow(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="missing.png"><div style="width:3000px">wide</div></body></html>'
    )
    result = browser_check(page)
    assert result["broken"] == ["missing.png"] and result["scrollWidth"] > result["clientWidth"]
