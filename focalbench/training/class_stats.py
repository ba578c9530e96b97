"""Per-class statistics of the training batches, per epoch: is a class's data "hard", and how much of the
loss does it carry?

For each class c and epoch, over the training examples of class c the epoch's batches held (with their
augmentation, in training mode, before the step):

    seen_c       = number of examples of class c
    mean_p_t_c   = (1 / seen_c) * sum_i p_t,i           p_t = the model's probability of the true class
    loss_share_c = sum_{i in c} l_i / sum_i l_i          l_i = the criterion's per-example loss, alpha-weighted

so loss_share sums to 1 over the classes and says what fraction of the training signal each class carried
(with alpha and deferred re-weighting: what the optimiser saw). This is what the focal loss article's claim
"minority-class examples are the hard ones, so focal loss shifts the loss toward them" is about.

The sums accumulate on the device (no host synchronisation per step) and are read once per epoch. A group of
K members (a fused group; K = 1 for a run alone) keeps one row of sums per member.
"""

from __future__ import annotations

import torch

COLUMNS = ("epoch", "class", "seen", "mean_p_t", "loss_share")


class TrainClassStats:
    """Accumulates ``seen``, sum of p_t and sum of the loss per (member, class) over one epoch."""

    def __init__(self, n_members: int, n_classes: int, device: torch.device):
        self.n_members, self.n_classes = n_members, n_classes
        self._sums = torch.zeros(3, n_members, n_classes, dtype=torch.float64, device=device)
        self._rows: list[list[dict]] = [[] for _ in range(n_members)]

    @torch.no_grad()
    def add(self, p_t: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        """One batch: ``p_t``, ``target`` and the per-example ``loss``, each ``[K, N]`` (``[N]`` for K = 1).
        Non-finite values (a diverging member) are counted as 0, so they cannot poison the other sums."""
        p_t, target, loss = (t.reshape(self.n_members, -1) for t in (p_t, target, loss))
        values = torch.stack([torch.ones_like(p_t), p_t, loss]).to(torch.float64)
        values = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        self._sums.scatter_add_(2, target.unsqueeze(0).expand(3, -1, -1), values)

    def end_epoch(self, epoch: int) -> None:
        """Turn the epoch's sums into rows (``COLUMNS``; epoch 1-based) and start the next epoch at zero."""
        seen, p_t, loss = self._sums.cpu().unbind(0)
        for k in range(self.n_members):
            total = float(loss[k].sum())
            for c in range(self.n_classes):
                n = float(seen[k, c])
                self._rows[k].append(
                    {
                        "epoch": epoch,
                        "class": c,
                        "seen": int(n),
                        "mean_p_t": round(float(p_t[k, c]) / n, 6) if n > 0 else None,
                        "loss_share": round(float(loss[k, c]) / total, 6) if total > 0 else None,
                    }
                )
        self._sums.zero_()

    def rows(self, member: int = 0) -> list[dict]:
        """The rows of one member, epoch by epoch, class by class."""
        return self._rows[member]


def true_class_probability(
    logits: torch.Tensor, target: torch.Tensor, scale: float | torch.Tensor, class_dim: int = 1
):
    """p_t = softmax(scale * z)[y] in float32, without gradient; ``class_dim`` is the class dimension of
    ``logits`` (1 for ``[N, C]`` and for a fused group's ``[K, C, N]``). ``scale`` is a float, or for a group
    whose members' scales differ a tensor ``[K, 1, 1]``."""
    with torch.no_grad():
        z = logits.detach().float()
        if isinstance(scale, torch.Tensor) or scale != 1.0:
            z = z * scale
        return (
            torch.softmax(z, dim=class_dim).gather(class_dim, target.unsqueeze(class_dim)).squeeze(class_dim)
        )
