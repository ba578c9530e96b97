"""The `focalbench losses` table and plot."""

from __future__ import annotations

import math

import pytest

from focalbench.errors import ConfigError
from focalbench.losses.curves import PT_GRID, loss_table, plot_loss_vs_pt

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(rows: list[dict[str, float]], gamma: float, p_t: float) -> dict[str, float]:
    (row,) = [r for r in rows if r["gamma"] == gamma and r["p_t"] == p_t]
    return row


def test_table_shape_and_keys():
    rows = loss_table([0, 0.5, 2])
    assert len(rows) == 3 * len(PT_GRID)
    assert set(rows[0]) == {"gamma", "p_t", "loss", "factor", "ce", "reduction"}
    assert [r["p_t"] for r in rows[: len(PT_GRID)]] == list(PT_GRID)


def test_table_follows_the_formula_at_every_point():
    """The table is FL = (1 - p_t)^gamma * CE at each grid point (the hand-computed 100x at p_t = 0.9 and
    6.25x at 0.6 for gamma = 2 are checked once, on the loss itself, in test_losses.py)."""
    rows = loss_table([0, 2])
    for row in rows:
        assert row["ce"] == pytest.approx(-math.log(row["p_t"]), rel=1e-12)
        assert row["loss"] == pytest.approx(row["factor"] * row["ce"], rel=1e-9)
        assert row["reduction"] == pytest.approx(1 / row["factor"], rel=1e-9)
        if row["gamma"] == 0.0:
            assert row["loss"] == pytest.approx(row["ce"], rel=1e-12)
            assert row["reduction"] == pytest.approx(1.0, rel=1e-12)
        assert row["factor"] == pytest.approx((1 - row["p_t"]) ** row["gamma"], rel=1e-9)


def test_table_loss_falls_with_gamma_and_p_t():
    rows = loss_table([0, 1, 2, 5], pts=(0.3, 0.7))
    for p_t in (0.3, 0.7):
        losses = [_row(rows, g, p_t)["loss"] for g in (0.0, 1.0, 2.0, 5.0)]
        assert losses == sorted(losses, reverse=True)
    assert _row(rows, 2.0, 0.7)["loss"] < _row(rows, 2.0, 0.3)["loss"]


@pytest.mark.parametrize(("gammas", "pts", "match"), [([-1], PT_GRID, "gamma"), ([2], (0.5, 1.0), "pts")])
def test_table_bad_arguments(gammas, pts, match):
    with pytest.raises(ConfigError, match=match):
        loss_table(gammas, pts)


def test_plot_writes_png(tmp_path):
    target = tmp_path / "nested" / "dir" / "focal.png"
    written = plot_loss_vs_pt([0, 0.5, 1, 2, 5], target)
    assert written == target
    data = target.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # five curves, axes and a legend, not an empty canvas
    assert [p.name for p in target.parent.iterdir()] == ["focal.png"]  # no temp file left behind


def test_plot_failure_leaves_no_partial_file(tmp_path):
    target = tmp_path / "focal.png"
    with pytest.raises(ConfigError, match="gamma"):
        plot_loss_vs_pt([2, -1], target)
    assert list(tmp_path.iterdir()) == []


def test_baseline_rows_beside_focal_loss():
    """FLSD-53 is focal loss with gamma 5 below p_t = 0.2 and 3 above; logit adjustment lowers a frequent
    class's loss and raises a rare class's at the same p_t (the offset tau log pi)."""
    from focalbench.losses.curves import baseline_rows

    rows = dict(baseline_rows(PT_GRID))
    flsd = rows["FLSD-53"]
    for p_t, value in zip(PT_GRID, flsd, strict=True):
        gamma = 5.0 if p_t < 0.2 else 3.0
        assert value == pytest.approx((1 - p_t) ** gamma * -math.log(p_t), rel=1e-9)
    head = rows["logit-adjusted τ=1, most frequent class (n=5000)"]
    tail = rows["logit-adjusted τ=1, least frequent class (n=50)"]
    for p_t, h, t in zip(PT_GRID, head, tail, strict=True):
        assert h < -math.log(p_t) < t


def test_losses_command_shows_the_baselines(tmp_path):
    from tests.conftest import run_cli

    out = run_cli("losses", "--gamma", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "FLSD-53" in out.stdout and "logit-adjusted" in out.stdout and "LDAM is not shown" in out.stdout
