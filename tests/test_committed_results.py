"""The committed results are what focalbench makes of the committed run records, byte for byte.

Every verdict and table under results/ must be regenerated from its run records alone by ``focalbench
report``: nothing typed in by hand, and a change to the reports that would alter a published verdict shows
up here first.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_cli

SUITE_FOLDERS = [
    "results/ci/sweeps/ci",
    "results/cifar10_lt_cpu/sweeps/cifar10_lt_cpu",
    "results/cifar10_lt_cpu/sweeps/cifar10_lt_cpu_precision",
]


@pytest.mark.parametrize("folder", SUITE_FOLDERS)
def test_committed_verdicts_and_tables_regenerate_from_the_records(folder, tmp_path):
    committed = REPO / folder
    assert (committed / "verdicts.json").is_file(), f"{folder} is not committed"
    out = run_cli("report", str(committed), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    regenerated = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert regenerated == json.loads((committed / "verdicts.json").read_text())
    for name in ("table.md", "table.csv", "verdicts.md"):
        assert (tmp_path / "out" / name).read_text() == (committed / name).read_text(), name
