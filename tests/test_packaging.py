"""The wheel carries the Hydra configs, so an installed focalbench works without a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_wheel_ships_the_configs_and_finds_them(tmp_path):
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    # setuptools warns ("... is absent from the `packages` configuration") when a config folder is not a listed
    # package; a user's first `make run` must show no such wall of warnings.
    assert "absent from" not in build.stdout + build.stderr
    wheel = next(tmp_path.glob("focalbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("focalbench/_configs/") for n in names if n.startswith("focalbench/_configs/")}
    in_repo = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}
    assert in_repo <= shipped, sorted(in_repo - shipped)
    assert "focalbench/reports/templates/report.html.j2" in names  # report.html's template
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # Outside the checkout, with only the unpacked wheel on the path: configs come from the package.
    code = (
        "import focalbench.config as c\nprint(c.config_dir())\nprint(c.compose(['loss=balanced_ce']).alpha)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    where, alpha = out.stdout.split()
    assert Path(where) == site / "focalbench" / "_configs" and alpha == "inverse_freq"
