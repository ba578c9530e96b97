"""SGD with momentum, Nesterov momentum and weight decay: ``torch.optim.SGD``'s update, in a few foreach ops.

Why not ``torch.optim.SGD`` itself: creating the first ``torch.optim`` optimizer imports ``torch._dynamo``
(about 1.4 s on a 2-core CPU, more than a default run's training), and its ``step`` goes through hooks,
profiling and a ``torch.compile`` guard that a plain loop does not need.

The update is torch's multi-tensor (``foreach``) SGD with dampening 0, for every parameter p with gradient g::

    g = g + weight_decay * p                      (when weight_decay != 0)
    b = g                                         (first step)
    b = momentum * b + g                          (later steps)
    g = g + momentum * b  if nesterov  else  b    (when momentum != 0)
    p = p - lr * g

with the same ops in the same order as ``torch.optim.SGD(foreach=True)``, so the parameters agree with it to
float rounding (``tests/test_optim.py`` checks 1e-7). It keeps torch's ``param_groups`` interface where
the training loop and ``torch.amp.GradScaler`` use it: ``param_groups[0]["lr"]`` is the learning rate of the
next step, and ``step()`` / ``zero_grad()`` take no required arguments.

``keep`` (fused groups, :mod:`focalbench.training.fused`): a bool tensor ``[K]`` on the parameters' device.
Every parameter then has a leading member dimension that splits into K equal blocks, and member k's block is
updated only where ``keep[k]`` is true: a diverged member is frozen, on the device, without a host sync.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SGD:
    """``torch.optim.SGD``'s update (dampening 0) for one group of parameters; see the module docstring."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("SGD got an empty parameter list")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}"
            )
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0")
        self.param_groups = [
            {"params": params, "lr": float(lr), "momentum": float(momentum), "nesterov": bool(nesterov),
             "weight_decay": float(weight_decay)}
        ]  # fmt: skip
        self.momentum_buffers: list[torch.Tensor] | None = None
        self.state: dict = {}  # torch.amp.GradScaler looks at optimizer.state

    @property
    def params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, keep: torch.Tensor | None = None) -> None:
        """One update of every parameter that has a gradient; ``keep`` freezes members (module docstring)."""
        group = self.param_groups[0]
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        if len(params) != len(self.params) and momentum != 0:
            raise RuntimeError("SGD with momentum needs a gradient for every parameter at every step")
        grads = [p.grad for p in params]
        if wd != 0:
            grads = torch._foreach_add(grads, params, alpha=wd)
        if momentum != 0:
            if self.momentum_buffers is None:
                self.momentum_buffers = [torch.clone(g).detach() for g in grads]
            else:
                torch._foreach_mul_(self.momentum_buffers, momentum)
                torch._foreach_add_(self.momentum_buffers, grads)
            if group["nesterov"]:  # in place, as torch does (into the .grad tensors when wd == 0)
                torch._foreach_add_(grads, self.momentum_buffers, alpha=momentum)
            else:
                grads = self.momentum_buffers
        if keep is not None:
            grads = [_masked(g, keep) for g in grads]
        torch._foreach_add_(params, grads, alpha=-lr)


def _masked(update: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``update`` with the blocks of the members not kept set to 0 (``where``, so a NaN there is dropped too)."""
    k = keep.numel()
    blocks = update.unflatten(0, (k, -1))  # a view whatever the memory format
    kept = torch.where(keep.view(k, *([1] * (blocks.dim() - 1))), blocks, 0.0)
    return kept.flatten(0, 1)
