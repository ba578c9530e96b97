"""report.html in a real browser: headless Chromium (Debian's package; `.ci/run` installs it when missing)
loads the page of a real small sweep from disk. Its DOM must hold the answer's sentences, every cell and every
figure, and nothing from the network; its screenshot must not be blank. Without Chromium this test FAILS: a
browser test that never runs is no test."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from focalbench.reports.report import report_for_sweep, write_report
from focalbench.sweeps.launch import run_sweep, write_sweep_list
from focalbench.sweeps.plan import plan_sweep
from tests.conftest import TINY, run_cli

# The flags a sandboxed, offline machine needs (no sandbox as root, no GPU, no background connections).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
WIDTH = 1280


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: `apt-get install chromium` (Debian's package; .ci/run does it)"
        )
    return found


def browse(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *flags, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp)


class PageParser(HTMLParser):
    """The text, the images' sources, the links and any script or stylesheet link of a page."""

    def __init__(self):
        super().__init__()
        self.text, self.images, self.links, self.scripts, self.stylesheets = [], [], [], 0, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        self.scripts += tag == "script"
        self.stylesheets += tag == "link"

    def handle_data(self, data):
        self.text.append(data)


def normal(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    overrides = [
        "loss=focal",
        "gamma=0,2",
        "alpha=none,inverse_freq",
        "seed=0,1",
        *TINY,
        f"results_dir={results}",
    ]
    plan = plan_sweep(overrides, name="html")
    outcome = run_sweep(plan, "inprocess", 1, show_progress=False)
    write_sweep_list(plan, outcome)
    report = report_for_sweep(plan.sweep_dir)
    write_report(report, plan.sweep_dir)
    return plan.sweep_dir / "report.html", report


def test_the_page_is_self_contained_and_holds_the_answer_every_cell_and_every_figure(page, tmp_path):
    path, report = page
    out = browse(path, tmp_path, "--dump-dom")
    assert out.returncode == 0, out.stderr[-2000:]
    dom = PageParser()
    dom.feed(out.stdout)
    text = normal(" ".join(dom.text))
    for line in report.answer.lines:
        assert normal(line) in text, line
    for cell in report.cells:
        assert cell.label in text
    assert len(dom.images) == len(report.plots) >= 5  # the Δ plot and the other figures, each embedded
    assert all(src.startswith("data:image/png;base64,") for src in dom.images)
    assert not [u for u in dom.images + dom.links if re.match(r"(https?:)?//", u)], "an external URL"
    assert dom.scripts == 0 and dom.stylesheets == 0  # no script needed, CSS inline
    runs = [r for c in report.cells for r in c.runs]
    for run in runs:  # every record linked, relative to the page, and the link leads to it
        href = next(h for h in dom.links if run.run_id in h)
        assert (path.parent / href).resolve() == (Path(run.run_dir) / "metrics.json").resolve()


def test_the_screenshot_is_the_page_at_the_asked_width_and_not_blank(page, tmp_path):
    from matplotlib.image import imread

    path, _ = page
    shot = tmp_path / "shot.png"
    out = browse(path, tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},2400")
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[1] == WIDTH and pixels.shape[0] == 2400
    ink = (pixels[..., :3].mean(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    assert 0.02 < ink < 0.9, ink
    assert pixels[..., :3].std() > 0.05


def test_report_writes_the_page_and_open_says_where_it_is(page, tmp_path):
    path, _ = page
    out = run_cli("report", str(path.parent), "--open", cwd=tmp_path, env={"BROWSER": "echo opening %s"})
    assert out.returncode == 0, out.stderr
    assert "report.html" in out.stdout and "opened" in out.stdout
