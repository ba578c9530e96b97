"""Start-up: what a run imports, and the batched composition of a grid (focalbench.config.compose_many)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from focalbench.config import compose, compose_many
from focalbench.errors import ConfigError
from focalbench.identity import run_id
from focalbench.sweeps.plan import expand_grid
from tests.conftest import TINY

GRIDS = [
    ["gamma=0,1,2,5", "seed=0,1,2"],
    ["loss=ce,focal,balanced_ce", "gamma=0", "imbalance=10,100", "data.n_max=200", "alpha=none,inverse_freq"],
    ["model.hidden=[64],[32,32]", "optim.lr=0.1,0.2", "epochs=3", "alpha=[1,2,3,4,5,6,7,8,9,10]"],
    ["experiment=debug", "gamma=1,2"],
    ["loss=ldam,ldam_drw", "alpha_start_epoch=0,0.8"],
    ["data=cifar10_lt", "model=cnn,resnet32", "gamma=0,2", "imbalance=10"],
]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: " ".join(g)[:40])
def test_compose_many_equals_compose_cell_by_cell(grid):
    cells = expand_grid(grid)
    for fast, slow in zip(compose_many(cells), [compose(c) for c in cells], strict=True):
        assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(slow)
        assert run_id(fast) == run_id(slow)


@pytest.mark.parametrize("bad", [["gamma=-1"], ["gama=1"], ["epochs=abc"], ["loss=nope"], ["data.nope=1"]])
def test_compose_many_raises_what_compose_raises(bad):
    with pytest.raises(ConfigError) as slow:
        compose(["seed=0", *bad])
    with pytest.raises(ConfigError) as fast:
        compose_many([["seed=0", *bad]])
    assert str(fast.value) == str(slow.value)


def test_a_run_imports_neither_dynamo_nor_plotting(tmp_path):
    """A default run pays for what it uses only: no torch._dynamo (focalbench's own SGD), no matplotlib,
    pandas or scipy (no plot is drawn), and no tracker library (logger=none)."""
    code = (
        "import sys\n"
        "from focalbench.cli import main\n"
        f"code = main(['run', *{TINY!r}, 'results_dir={tmp_path}'])\n"
        "assert code == 0, code\n"
        "heavy = ('torch._dynamo', 'matplotlib', 'pandas', 'scipy', 'mlflow', 'tensorboard', 'wandb')\n"
        "heavy = [m for m in heavy if m in sys.modules or any(k.startswith(m + '.') for k in sys.modules)]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
