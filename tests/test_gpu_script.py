"""bench/gpu.sh, the prepared GPU check, runs end to end without a GPU (``--device cpu --quick``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh"), "--device", "cpu", "--quick", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    summary = (out / "summary.md").read_text()
    assert summary.count(": exit 0 in ") == 3, summary  # tests, benchmarks, fused group
    group = json.loads((out / "fused_resnet32.json").read_text())
    # the CPU dry run trains in fp32, as precision=auto does there
    assert group["members"] == 12 and group["precision"] == "fp32" and group["fused_images_per_s"] > 0
    assert (out / "bench.md").is_file() and (out / "bench.json").is_file()
