"""Fused groups: K runs that differ only in their seed, loss, gamma and alpha train as one model.

A sweep's cells often share everything that shapes the computation (data, architecture, epochs, batch size,
optimizer, schedule, precision, device) and differ only in the loss settings and the seed. A fused group
trains such K runs together: one model whose every parameter has a leading member dimension, one forward and
one backward pass per step for all K, one optimizer step. The per-step overhead (Python, the dispatcher,
kernel launches) is paid once for K runs; the arithmetic is the K runs' own.

Exactness. Member k sees exactly the numbers its unfused run would see:

- its own initialisation: each member's model is built exactly as the unfused run builds it, right after
  seeding torch with its seed (``runner.prepare_run``), and then stacked;
- its own batches: its own ``torch.Generator`` seeded with its seed draws its permutation and augmentation,
  as in the unfused loop (``data.batches.iter_member_batches``);
- its own loss with its own gamma and alpha (and deferred re-weighting epoch), through the loss's batched
  criterion where it registers one (``batched=`` in ``LOSSES.register``), else its own criterion;
- its own BatchNorm statistics (each member's channels are its own channels of a K-times wider BatchNorm);
- its own divergence: a member whose loss becomes non-finite is recorded as diverged at that step and frozen
  (``SGD.step(keep=...)``: its parameters stop updating, on the device), while the others go on;
- its own evaluation: after each epoch the fused parameters are copied back into the member's own model,
  which is evaluated by the same ``loop.Evaluator`` code as an unfused run.

The differences are float rounding: a batched matrix product or a K-times wider BatchNorm may sum in another
order than the unfused kernels. ``tests/test_fused.py`` measures them.

Layouts. Vector models (the MLP) run "feature-major": activations are ``[K, features, batch]``, a Linear layer
is one ``bmm`` with weights ``[K, out, in]`` and a BatchNorm sees ``[1, K * features, batch]``, so no
activation is ever transposed. Image models (cnn, resnet32) run "wide", as HFTA does: activations are
``[batch, K * channels, H, W]``, a convolution is a grouped convolution with K groups, a BatchNorm has
``K * channels`` channels, and the models' own ``forward`` code runs unchanged on the wide tensors (every op
in it acts per channel; the option-A shortcut, which pads channels, has a fused twin). A model with any other
module (e.g. Dropout, which draws from the global generator) is not fusable and trains unfused.

On a CPU, grouped convolutions are slower than K separate convolutions (``bench/bench_fused.py``), so the
sweep fuses image models only on CUDA by default (``focalbench.sweeps.fuse``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.data import SplitData
from focalbench.data.batches import iter_member_batches
from focalbench.registry import LOSSES
from focalbench.training.loop import (
    Diverged,
    Members,
    TrainResult,
    alpha_start,
    drw_alpha,
    make_criterion,
    make_optimizer,
    probability_scale,
    takes_reduction,
    train_members,
)


class NotFusable(Exception):
    """These runs cannot train as one fused model (the reason is the message); train them unfused."""


# ----------------------------------------------------------------------------------------------------------
# Fused layers. Each keeps its members' own modules (not registered as submodules) to copy its state back.
# Every parameter's dim 0 splits into K member blocks (what SGD.step(keep=...) relies on).
# ----------------------------------------------------------------------------------------------------------


class _Fused(nn.Module):
    """Base of the fused layers: K member modules behind one layer with a member dimension. Each subclass
    defines ``copy_to_members()``, which writes each member's slice of the fused state back into its module."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        object.__setattr__(self, "members", list(members))  # a plain attribute: not part of the fused state

    @property
    def k(self) -> int:
        return len(self.members)


def _stack(tensors, dim: int = 0) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors], dim).contiguous())


class StackedLinear(_Fused):
    """K ``nn.Linear`` layers, feature-major: ``[K, in, N] -> [K, out, N]`` (weights ``[K, out, in]``)."""

    def __init__(self, members: list[nn.Linear]) -> None:
        super().__init__(members)
        self.weight = _stack([m.weight for m in members])
        self.bias = None if members[0].bias is None else _stack([m.bias.unsqueeze(1) for m in members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(self.weight, x)
        return torch.baddbmm(self.bias, self.weight, x)

    @torch.no_grad()
    def copy_to_members(self) -> None:
        for k, m in enumerate(self.members):
            m.weight.copy_(self.weight[k])
            if m.bias is not None:
                m.bias.copy_(self.bias[k, :, 0])


class StackedNormedLinear(_Fused):
    """K ``NormedLinear`` (cosine) heads, feature-major: ``[K, in, N] -> [K, C, N]``."""

    def __init__(self, members) -> None:
        super().__init__(members)
        self.weight = _stack([m.weight for m in members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(F.normalize(self.weight, dim=2), F.normalize(x, dim=1))

    @torch.no_grad()
    def copy_to_members(self) -> None:
        for k, m in enumerate(self.members):
            m.weight.copy_(self.weight[k])


class WideBatchNorm(_Fused):
    """K BatchNorm layers of C channels as one BatchNorm of K * C channels (each member's statistics are its
    own channels'). Feature-major input ``[K, C, N]`` is seen as ``[1, K * C, N]``; wide input as it is."""

    def __init__(self, members, feature_major: bool) -> None:
        super().__init__(members)
        m = members[0]
        if not (m.affine and m.track_running_stats):
            raise NotFusable("a BatchNorm without affine parameters or running statistics")
        wide = type(m)(m.num_features * self.k, eps=m.eps, momentum=m.momentum, device=m.weight.device)
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(wide, name).copy_(torch.cat([getattr(x, name) for x in members]))
            wide.num_batches_tracked.copy_(m.num_batches_tracked)
        self.bn = wide
        self.feature_major = feature_major

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.feature_major:
            return self.bn(x)
        k, c, n = x.shape
        return self.bn(x.reshape(1, k * c, n)).view(k, c, n)

    @torch.no_grad()
    def copy_to_members(self) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            blocks = getattr(self.bn, name).view(self.k, -1)
            for k, m in enumerate(self.members):
                getattr(m, name).copy_(blocks[k])
        for m in self.members:
            m.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class StackedLayerNorm(_Fused):
    """K LayerNorms over the features, feature-major ``[K, F, N]``."""

    def __init__(self, members) -> None:
        super().__init__(members)
        m = members[0]
        if len(m.normalized_shape) != 1 or not m.elementwise_affine or m.bias is None:
            raise NotFusable("a LayerNorm other than over the last dim with weight and bias")
        self.eps = m.eps
        self.weight = _stack([x.weight.unsqueeze(0) for x in members])  # [K, 1, F]
        self.bias = _stack([x.bias.unsqueeze(0) for x in members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.transpose(1, 2)  # [K, N, F]
        out = F.layer_norm(rows, rows.shape[-1:], eps=self.eps) * self.weight + self.bias
        return out.transpose(1, 2)

    @torch.no_grad()
    def copy_to_members(self) -> None:
        for k, m in enumerate(self.members):
            m.weight.copy_(self.weight[k, 0])
            m.bias.copy_(self.bias[k, 0])


class GroupedConv2d(_Fused):
    """K ``nn.Conv2d`` as one grouped convolution on wide input ``[N, K * C_in, H, W]``."""

    def __init__(self, members: list[nn.Conv2d]) -> None:
        super().__init__(members)
        m = members[0]
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise NotFusable("a convolution with padding other than explicit zeros")
        self.stride, self.padding, self.dilation = m.stride, m.padding, m.dilation
        self.groups = m.groups * self.k
        weight = torch.cat([x.weight.detach() for x in members])
        if members[0].weight.is_contiguous(memory_format=torch.channels_last):
            weight = weight.contiguous(memory_format=torch.channels_last)
        self.weight = nn.Parameter(weight)
        self.bias = None if m.bias is None else nn.Parameter(torch.cat([x.bias.detach() for x in members]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    @torch.no_grad()
    def copy_to_members(self) -> None:
        weights = self.weight.unflatten(0, (self.k, -1))
        biases = None if self.bias is None else self.bias.view(self.k, -1)
        for k, m in enumerate(self.members):
            m.weight.copy_(weights[k])
            if biases is not None:
                m.bias.copy_(biases[k])


class WideLinear(StackedLinear):
    """K ``nn.Linear`` on wide input ``[N, K * in] -> [N, K * out]`` (the heads of image models)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        stacked = x.reshape(n, self.k, -1).transpose(0, 1).transpose(1, 2)  # [K, in, N], a view
        return super().forward(stacked).permute(2, 0, 1).reshape(n, -1)


class WideNormedLinear(StackedNormedLinear):
    """K ``NormedLinear`` heads on wide input ``[N, K * in] -> [N, K * C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        stacked = x.reshape(n, self.k, -1).transpose(0, 1).transpose(1, 2)
        return super().forward(stacked).permute(2, 0, 1).reshape(n, -1)


class WidePadShortcut(_Fused):
    """ResNet-32's option-A shortcut (subsample, zero-pad the channels) applied to each member's channels."""

    def __init__(self, members) -> None:
        super().__init__(members)
        self.pad = members[0].pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, kc, h, w = x.shape
        sub = x[:, :, ::2, ::2].reshape(n, self.k, kc // self.k, (h + 1) // 2, (w + 1) // 2)
        out = F.pad(sub, (0, 0, 0, 0, self.pad, self.pad)).flatten(1, 2)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def copy_to_members(self) -> None:
        pass


# Modules without parameters that act on each element, or on each channel separately.
PER_CHANNEL = (
    nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip


def _is_stateless(module: nn.Module) -> bool:
    return not any(True for _ in module.parameters(recurse=False)) and not any(
        True for _ in module.buffers(recurse=False)
    )


def _fuse_vector_layer(layers: list[nn.Module], first: bool) -> nn.Module:
    from focalbench.models.heads import NormedLinear

    m = layers[0]
    if isinstance(m, nn.Linear):
        return StackedLinear(layers)
    if isinstance(m, NormedLinear):
        return StackedNormedLinear(layers)
    if isinstance(m, nn.BatchNorm1d):
        return WideBatchNorm(layers, feature_major=True)
    if isinstance(m, nn.LayerNorm):
        return StackedLayerNorm(layers)
    if isinstance(m, nn.Flatten) and first:
        return nn.Identity()  # the fused input arrives flattened
    if isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Identity)):
        return copy.deepcopy(m)
    raise NotFusable(f"no fused {type(m).__name__} for vector models")


def _fuse_wide_module(modules: list[nn.Module]) -> nn.Module:
    """The wide twin of one module of K structurally identical models (recursively)."""
    from focalbench.models.heads import NormedLinear
    from focalbench.models.resnet32 import PadShortcut

    m = modules[0]
    if any(type(x) is not type(m) for x in modules):
        raise NotFusable("the members' models differ in structure")
    if isinstance(m, nn.Conv2d):
        return GroupedConv2d(modules)
    if isinstance(m, nn.BatchNorm2d):
        return WideBatchNorm(modules, feature_major=False)
    if isinstance(m, nn.Linear):
        return WideLinear(modules)
    if isinstance(m, NormedLinear):
        return WideNormedLinear(modules)
    if isinstance(m, PadShortcut):
        return WidePadShortcut(modules)
    if isinstance(m, PER_CHANNEL) or (isinstance(m, nn.Flatten) and m.start_dim == 1):
        return copy.deepcopy(m)
    if not m._modules or not _is_stateless(m):
        raise NotFusable(f"no fused {type(m).__name__}")
    # A container (Sequential, a block, the model itself): the same forward code over fused children.
    twin = copy.copy(m)
    twin._parameters, twin._buffers = {}, {}
    twin._modules = {
        name: _fuse_wide_module([x._modules[name] for x in modules]) for name, child in m._modules.items()
    }
    return twin


class FusedModel(nn.Module):
    """K models as one: ``forward(x [K, N, *input_shape]) -> logits [K, C, N]``; see the module docstring."""

    def __init__(self, models: list[nn.Module], channels_last: bool = False) -> None:
        super().__init__()
        from focalbench.models.mlp import MLP

        if len(models) < 1:
            raise NotFusable("no models")
        if any(type(m) is not type(models[0]) for m in models):
            raise NotFusable("the members' models differ")
        self.k = len(models)
        if isinstance(models[0], MLP):
            self.layout = "feature-major"
            nets = [m.net for m in models]
            if any(len(n) != len(nets[0]) for n in nets):
                raise NotFusable("the members' MLPs differ in depth")
            self.net = nn.Sequential(
                *(_fuse_vector_layer([n[i] for n in nets], first=i == 0) for i in range(len(nets[0])))
            )
        else:
            self.layout = "wide"
            self.net = _fuse_wide_module(models)
        self.channels_last = channels_last and self.layout == "wide"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [K, N, *input_shape]`` -> logits ``[K, C, N]``, class-major: softmax over dim 1 runs along
        contiguous rows of N (much faster on a CPU than over rows of C = 10); the batched criteria take this."""
        k, n = x.shape[:2]
        if self.layout == "feature-major":
            return self.net(x.reshape(k, n, -1).transpose(1, 2))
        wide = x.transpose(0, 1).reshape(n, -1, *x.shape[3:])  # [N, K * C, H, W]
        if self.channels_last:
            wide = wide.contiguous(memory_format=torch.channels_last)
        return self.net(wide).view(n, k, -1).permute(1, 2, 0).contiguous()

    def copy_to_members(self) -> None:
        """Copy every member's parameters and BatchNorm statistics back into its own model."""
        for module in self.modules():
            if isinstance(module, _Fused):
                module.copy_to_members()


def fuse_models(
    models: list[nn.Module], check_input: torch.Tensor | None = None, channels_last: bool = False
) -> FusedModel:
    """The fused model of ``models`` (K models of one architecture, each built and seeded as its run builds
    it). With ``check_input`` (a few examples ``[n, *input_shape]``), the fused forward in evaluation mode is
    compared with every member's own forward first: NotFusable when they disagree (a model whose forward
    mixes channels, which the wide layout cannot see)."""
    fused = FusedModel(models, channels_last)
    if check_input is not None:
        _check_forward(fused, models, check_input)
    return fused


@torch.no_grad()
def _check_forward(fused: FusedModel, models: list[nn.Module], x: torch.Tensor) -> None:
    modes = [m.training for m in models]
    fused.eval()
    for m in models:
        m.eval()
    try:
        member_in = (
            x.contiguous(memory_format=torch.channels_last) if fused.channels_last and x.dim() == 4 else x
        )
        expected = torch.stack([m(member_in).float() for m in models])
        got = fused(x.unsqueeze(0).expand(len(models), *x.shape)).float().transpose(1, 2)
    finally:
        fused.train()
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    scale = expected.abs().max().clamp_min(1.0)
    if got.shape != expected.shape or not bool(((got - expected).abs().max() <= 1e-4 * scale).all()):
        raise NotFusable(
            "the fused forward disagrees with the members' own (a model whose forward mixes channels)"
        )


# ----------------------------------------------------------------------------------------------------------
# The members' losses
# ----------------------------------------------------------------------------------------------------------


class GroupCriterion:
    """The K members' losses of one step, ``(logits [K, C, N], target [K, N]) -> [K]``.

    Members whose loss registers a batched criterion (``batched=`` in ``LOSSES.register``) are computed
    together, one call per loss; the others call their own criterion. Call :meth:`start_epoch` before each
    epoch: each member's alpha applies from its own ``alpha_start_epoch`` on (deferred re-weighting)."""

    def __init__(self, cfgs, train_counts: list[int], alphas: list, device) -> None:
        self.k = len(cfgs)
        self.alphas = alphas
        self.alpha_from = [alpha_start(c) for c in cfgs]
        self.ones = torch.ones(len(train_counts), device=device)
        self.parts: list[tuple[list[int], Callable, bool]] = []  # (members, criterion, batched)
        by_loss: dict[str, list[int]] = {}
        for i, cfg in enumerate(cfgs):
            by_loss.setdefault(str(cfg.loss.name), []).append(i)
        for name, members in by_loss.items():
            batched = LOSSES.get(name).meta.get("batched")
            if batched is not None:
                criterion = batched([cfgs[i] for i in members], list(train_counts), device)
                self.parts.append((members, criterion, True))
            else:
                self.parts += [([i], make_criterion(cfgs[i], train_counts, device), False) for i in members]
        # per-example losses (for the per-class loss shares) when every part's criterion can give them
        self.per_example = all(takes_reduction(c) for _, c, _ in self.parts)
        order = [i for members, _, _ in self.parts for i in members]
        self.inverse = None if order == list(range(self.k)) else torch.tensor(_argsort(order), device=device)
        # Each part's members as a slice of the member dim when they are consecutive, else an index tensor.
        self.select = [
            slice(m[0], m[-1] + 1) if m == list(range(m[0], m[-1] + 1)) else torch.tensor(m, device=device)
            for m, _, _ in self.parts
        ]
        self.part_alpha: list = []

    def start_epoch(self, epoch: int) -> None:
        """Set each member's alpha for this epoch (None before its ``alpha_start_epoch``)."""
        active = [drw_alpha(a, start, epoch) for a, start in zip(self.alphas, self.alpha_from, strict=True)]
        self.part_alpha = []
        for members, _, batched in self.parts:
            if not batched:
                self.part_alpha.append(active[members[0]])
            elif all(active[i] is None for i in members):
                self.part_alpha.append(None)
            else:
                self.part_alpha.append(
                    torch.stack([self.ones if active[i] is None else active[i].float() for i in members])
                )

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The members' losses ``[K]``; with ``reduction="none"`` their alpha-weighted per-example losses
        ``[K, N]``, each member's reduced by its own ``loss.mean`` to its entry of the ``[K]``."""
        losses = []
        for (_, criterion, batched), select, alpha in zip(
            self.parts, self.select, self.part_alpha, strict=True
        ):
            part_logits, part_target = logits[select], target[select]
            if reduction != "mean":
                losses.append(self._part(criterion, batched, part_logits, part_target, alpha, reduction))
            elif batched:
                losses.append(criterion(part_logits, part_target, alpha))
            else:  # the member's own criterion, on its logits [N, C]
                losses.append(criterion(part_logits[0].t(), part_target[0], alpha).reshape(1))
        out = losses[0] if len(losses) == 1 else torch.cat(losses)
        return out if self.inverse is None else out[self.inverse]

    @staticmethod
    def _part(criterion, batched: bool, logits, target, alpha, reduction: str) -> torch.Tensor:
        """One part's losses under ``reduction`` ("none": ``[k, N]``, "sum": ``[k]``)."""
        if batched:
            return criterion(logits, target, alpha, reduction=reduction)
        return criterion(logits[0].t(), target[0], alpha, reduction=reduction).unsqueeze(0)


def _argsort(values: list[int]) -> list[int]:
    return sorted(range(len(values)), key=values.__getitem__)


# ----------------------------------------------------------------------------------------------------------
# Training a group
# ----------------------------------------------------------------------------------------------------------


def train_group(
    cfgs: list,
    data: SplitData,
    models: list[nn.Module],
    alphas: list,
    device: torch.device,
    precision: str,
    progress: Callable[[dict], None],
) -> tuple[list[TrainResult | Diverged], float]:
    """Train the K members (``cfgs[k]``, ``models[k]``, ``alphas[k]``) as one fused model and evaluate each,
    as ``loop.train`` does for one run: the one training loop (``loop.train_members``) over a
    :class:`FusedGroup`. Returns every member's ``TrainResult`` or ``Diverged`` and the group's training time
    in seconds (the epochs, without evaluation, as ``TrainResult.train_time_s``).

    ``progress`` gets ``{"event": "epoch", "member": k, ...}`` per member and epoch (the row of its history),
    ``{"event": "group_epoch", "epoch": e}`` after each epoch and ``{"event": "step", ...}`` at the progress
    interval. Raises NotFusable when the models cannot be fused."""
    return train_members(FusedGroup(cfgs, data, models, alphas, device, precision), data, progress)


class FusedGroup(Members):
    """K > 1 runs as one fused model (:class:`FusedModel`): each member's own batches
    (``iter_member_batches``), its own loss (:class:`GroupCriterion`), one backward pass for all, and one SGD
    step that leaves diverged members frozen (``SGD.step(keep=...)``). Logits ``[K, C, N]``, losses ``[K]``.
    Raises NotFusable when the models cannot be fused."""

    freezes_diverged = True

    def __init__(self, cfgs: list, data: SplitData, models: list[nn.Module], alphas: list, device, precision):
        super().__init__(cfgs, models, data, device, precision, shape=(len(cfgs),))
        self.fused = fuse_models(models, _normalised_examples(data, 2), self.channels_last).to(device)
        self.fused.train()
        self.optimizer = make_optimizer(cfgs[0], self.fused.parameters())
        self.criterion = GroupCriterion(cfgs, data.train_counts, alphas, device)
        self.generators = [torch.Generator(device=device).manual_seed(int(c.seed)) for c in cfgs]
        self.per_example = self.criterion.per_example
        scales = [probability_scale(c) for c in cfgs]
        self.probability_scale = (
            1.0 if set(scales) == {1.0} else torch.tensor(scales, device=device).view(-1, 1, 1)
        )

    def batches(self, data: SplitData, batch_size: int):
        return iter_member_batches(data, batch_size, self.generators)

    def start_epoch(self, epoch: int) -> None:
        self.criterion.start_epoch(epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused(x)

    def losses(self, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return self.criterion(logits, target, reduction=reduction)

    def step(self, losses: torch.Tensor, keep: torch.Tensor | None) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step(keep=keep)  # a member that diverged now or before stays frozen

    def copy_to_members(self) -> None:
        self.fused.copy_to_members()


def _normalised_examples(data: SplitData, n: int) -> torch.Tensor:
    from focalbench.data.batches import normalise

    source = data.val_x if data.val_y.numel() >= n else data.test_x
    return normalise(data, source[:n])


# ----------------------------------------------------------------------------------------------------------
# Running a group: records as the runner writes them, one folder per member
# ----------------------------------------------------------------------------------------------------------


def execute_group(cfgs: list, *, on_epoch: Callable[[int], None] | None = None, notify=None) -> list:
    """Run the K configs ``cfgs`` (one fusable group, see ``focalbench.sweeps.fuse``) as one fused model and
    write each member's record exactly where and as ``runner.execute_run`` writes it; return their
    ``RunOutcome`` in the order of ``cfgs``. Members already done are skipped, and members another process
    holds the lock of are left to it (outcome "locked"), as ``execute_run`` does; the others are claimed with
    their lock files for the whole group's training. A group of fewer than two members to run, or one that
    cannot be fused, runs through ``execute_run``. Like ``execute_run`` it never raises for a failed run: when
    the fused group fails, its members run again unfused, one by one.

    ``on_epoch(e)`` is called after each epoch (the sweep's progress bar for the group); ``notify`` receives
    the one-line messages about locks."""
    from focalbench.data import resolve_run_config
    from focalbench.identity import run_id
    from focalbench.training import lock as run_lock
    from focalbench.training import record, runner

    cfgs = [resolve_run_config(c) for c in cfgs]  # data.resplit=auto: the records say what the runs did
    outcomes: list = [None] * len(cfgs)
    todo, claims = [], []
    for k, cfg in enumerate(cfgs):
        rid = run_id(cfg)
        rdir = record.run_dir(cfg.results_dir, rid)
        if record.is_done(rdir):
            outcomes[k] = runner.RunOutcome(rid, rdir, "skipped", metrics=record.read_metrics(rdir))
            continue
        claim = run_lock.try_acquire(rdir, notify)
        if not isinstance(claim, run_lock.RunLock):
            outcomes[k] = runner.RunOutcome(rid, rdir, "locked", error=claim.holder())
        elif record.is_done(rdir):  # finished by another process just before we claimed it
            claim.release()
            outcomes[k] = runner.RunOutcome(rid, rdir, "skipped", metrics=record.read_metrics(rdir))
        else:
            todo.append(k)
            claims.append(claim)
    if len(todo) < 2:
        for claim in claims:
            claim.release()
        for k in todo:
            outcomes[k] = runner.execute_run(cfgs[k], quiet=True, notify=notify)
        if cfgs and cfgs[0].get("logger"):
            from focalbench.loggers import log_outcome

            for k, outcome in enumerate(outcomes):
                if k not in todo and outcome.status == "skipped":
                    log_outcome(cfgs[k], outcome)
        return outcomes

    members = [cfgs[k] for k in todo]
    rids = [run_id(c) for c in members]
    rdirs = [record.run_dir(c.results_dir, r) for c, r in zip(members, rids, strict=True)]
    failed = None
    try:
        metrics = _train_claimed_group(members, rids, rdirs, on_epoch)
        for k, rid, rdir, m in zip(todo, rids, rdirs, metrics, strict=True):
            outcomes[k] = runner.RunOutcome(rid, rdir, m["status"], metrics=m)
    except Exception as exc:  # the group must not take the sweep down: its members run unfused instead
        failed = exc
    finally:
        for claim in claims:
            claim.release()
    if failed is not None:
        for k in todo:
            outcomes[k] = runner.execute_run(cfgs[k], quiet=True, notify=notify)  # logs itself
    elif cfgs[0].get("logger"):
        # Each member is logged from its own record, as its own tracker run, once the locks are released.
        from focalbench.loggers import log_outcome

        for k, outcome in enumerate(outcomes):
            if k in todo or outcome.status == "skipped":
                log_outcome(cfgs[k], outcome)
    return outcomes


def _train_claimed_group(members, rids, rdirs, on_epoch) -> list[dict]:
    """Train the claimed members as one group; each run folder gets its config and an "attempt" line in its
    train.log (appended to, as ``execute_run`` does), and on failure the reason before it is run unfused."""
    import os
    import socket
    import time
    import traceback

    from omegaconf import OmegaConf

    from focalbench.config import cell_label
    from focalbench.identity import RECORD_VERSION
    from focalbench.training import record

    logs = []
    try:
        for cfg, rdir in zip(members, rdirs, strict=True):
            (rdir / record.ERROR_FILE).unlink(missing_ok=True)
            record.write_atomic(rdir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            logs.append(open(rdir / "train.log", "a", encoding="utf-8"))  # noqa: SIM115 (closed below)
        for log, cfg, rid in zip(logs, members, rids, strict=True):
            log.write(
                f"attempt: pid {os.getpid()} on {socket.gethostname()} at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} (record version {RECORD_VERSION})\n"
                f"fused group of {len(members)}: {', '.join(rids)} (this run: {rid}, {cell_label(cfg)})\n"
            )
            log.flush()
        return _train_group_and_record(members, rids, rdirs, logs, on_epoch)
    except Exception as exc:
        for log in logs:
            log.write(f"fused training failed ({type(exc).__name__}: {exc}); running this run unfused\n")
            if not isinstance(exc, NotFusable):
                log.write(traceback.format_exc())
        raise
    finally:
        for log in logs:
            log.close()


def _train_group_and_record(members, rids, rdirs, logs, on_epoch) -> list[dict]:
    from focalbench.data import load_data, run_data_config
    from focalbench.training import runner

    runner._pay_one_time_costs()
    wall0 = time.perf_counter()
    cfg = members[0]
    with runner.deterministic_algorithms(bool(cfg.deterministic)):
        runner.set_threads(int(cfg.threads), int(cfg.jobs), vector_data=cfg.data.name == "synthetic")
        device = runner.resolve_device(cfg.device)
        precision = runner.resolve_precision(cfg.precision, device)
        data = load_data(run_data_config(cfg), device)  # one split: fusion keeps resplit's seeds apart
        setups = []
        for member, rid in zip(members, rids, strict=True):
            runner.seed_everything(int(member.seed))  # each model's initialisation, exactly as its own run
            setups.append(runner.prepare_run(member, rid, data, device, precision))

        def progress(event: dict) -> None:
            if event["event"] == "epoch":
                val = event.get("val_balanced_accuracy")
                status = f"loss {event['train_loss']:.4f}  " + (
                    f"val bal-acc {val:.2f}%  " if val is not None else ""
                )
                logs[event["member"]].write(
                    f"epoch {event['epoch']}: {status}{event['images_per_s']:.0f} img/s\n"
                )
                logs[event["member"]].flush()
            elif event["event"] == "group_epoch" and on_epoch is not None:
                on_epoch(event["epoch"])

        outcomes, train_time = train_group(
            members, data, [s.model for s in setups], [s.alpha for s in setups], device, precision, progress
        )
    wall = time.perf_counter() - wall0
    size = len(members)
    metrics = []
    for k, (member, rdir, setup, outcome) in enumerate(zip(members, rdirs, setups, outcomes, strict=True)):
        group = {
            "size": size,
            "index": k,
            "run_ids": rids,
            "train_time_s": round(train_time, 3),
            "wall_time_s": round(wall, 3),
            "timing": "each member's wall_time_s and train_time_s are its share (1/size) of the group's",
        }
        metrics.append(
            runner.write_record(
                member,
                rdir,
                setup,
                data,
                outcome,
                wall_time_s=wall / size,
                train_time_s=train_time / size,
                extra={"fused_group": group},
            )
        )
        if isinstance(outcome, Diverged):
            logs[k].write(f"{outcome}\n")
    return metrics
