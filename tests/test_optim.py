"""focalbench's own SGD (focalbench.training.optim) against torch.optim.SGD, and its per-member freezing."""

from __future__ import annotations

import pytest
import torch

from focalbench.training.optim import SGD


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (6,), (3, 4, 3, 3), (7,)]
    return [torch.randn(s, generator=g).requires_grad_() for s in shapes]


def _loss(params: list[torch.Tensor], step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + step)
    return sum(((p - torch.randn(p.shape, generator=g)) ** 2 * (i + 1)).sum() for i, p in enumerate(params))


@pytest.mark.parametrize(
    "momentum,nesterov,weight_decay",
    [(0.0, False, 0.0), (0.0, False, 5e-4), (0.9, False, 0.0), (0.9, False, 5e-4), (0.9, True, 0.0),
     (0.9, True, 5e-4), (0.5, True, 1e-2)],
)  # fmt: skip
def test_matches_torch_sgd(momentum, nesterov, weight_decay):
    ours, theirs = _params(0), _params(0)
    opt_ours = SGD(ours, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    opt_theirs = torch.optim.SGD(
        theirs, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, foreach=True
    )
    for step in range(25):
        lr = 0.1 * (1 + step) / 25  # a schedule: lr changes every step, through param_groups as in the loop
        for opt, params in ((opt_ours, ours), (opt_theirs, theirs)):
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            _loss(params, step).backward()
            opt.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


def test_keep_freezes_members_and_leaves_the_others_exact():
    """Parameters with a leading member dimension (K blocks): a member not kept does not move, even when its
    gradient is NaN; the kept members move exactly as without the mask."""
    k = 3
    masked = [torch.randn(k * 4, 5).requires_grad_(), torch.randn(k * 2).requires_grad_()]
    plain = [p.detach().clone().requires_grad_() for p in masked]
    keep = torch.tensor([True, False, True])
    opt_masked = SGD(masked, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt_plain = SGD(plain, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    before = [p.detach().clone() for p in masked]
    for step in range(5):
        for opt, params in ((opt_masked, masked), (opt_plain, plain)):
            opt.zero_grad()
            _loss(params, step).backward()
        masked[0].grad[4:8] = float("nan")  # member 1 diverged
        opt_masked.step(keep=keep)
        opt_plain.step()
    for p, q, b in zip(masked, plain, before, strict=True):
        blocks, ref, start = (
            p.detach().unflatten(0, (k, -1)),
            q.detach().unflatten(0, (k, -1)),
            b.unflatten(0, (k, -1)),
        )
        assert torch.equal(blocks[1], start[1])
        assert torch.equal(blocks[0], ref[0]) and torch.equal(blocks[2], ref[2])


def test_no_dynamo_import():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from focalbench.training.optim import SGD\n"
        "p = torch.zeros(3, requires_grad=True); o = SGD([p], lr=0.1, momentum=0.9)\n"
        "p.sum().backward(); o.step()\n"
        "assert 'torch._dynamo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
