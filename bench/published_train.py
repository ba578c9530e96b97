"""A long-tailed CIFAR training script written the way the published ones are (the baseline of bench_published).

This follows the structure of the LDAM-DRW authors' ``cifar_train.py`` (Cao et al. 2019), the script most
long-tailed CIFAR papers start from, with its defaults:

- data: ``torchvision.datasets.CIFAR10`` subsampled to CIFAR-10-LT (``exp`` profile, rho = 100: class i keeps
  ``int(5000 * rho ** (-i / 9))`` images, chosen by a seeded numpy shuffle, as ``IMBALANCECIFAR10`` does);
- per-sample transforms on PIL images in a ``DataLoader``: ``RandomCrop(32, padding=4)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``; batch 128, shuffled,
  ``num_workers=4`` (the script's default ``--workers``), ``pin_memory=True``;
- model: ResNet-32 (focalbench's own module, so both sides train the same network), NCHW, fp32;
- SGD (lr 0.1 with the 5-epoch linear warm-up, momentum 0.9, weight decay 2e-4), cross-entropy;
- after each epoch, a pass over the 10,000 test images (batch 100, same loader settings), computing the
  accuracy and per-class accuracy.

It is a benchmark baseline, not a feature: ``python bench/published_train.py --root DIR [--epochs 1]``.
``DIR`` holds ``cifar-10-batches-py``. The MD5 check of torchvision is off because the project's local copy
is JPEG-derived (its files differ from the originals by design).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T

if __package__ in (None, ""):  # run as a script: make `focalbench` importable from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from focalbench.models.resnet32 import ResNet32

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the values cifar_train.py uses


class ImbalancedCIFAR10(torchvision.datasets.CIFAR10):
    """CIFAR-10 with class i cut to ``int(5000 * rho ** (-i / 9))`` images (seeded shuffle per class)."""

    def __init__(self, root: str, imbalance: float = 100.0, seed: int = 0, **kwargs) -> None:
        super().__init__(root, **kwargs)
        rng = np.random.RandomState(seed)
        targets = np.array(self.targets)
        keep = []
        for cls in range(10):
            idx = np.where(targets == cls)[0]
            rng.shuffle(idx)
            keep.extend(idx[: int(5000 * imbalance ** (-cls / 9))])
        self.data = self.data[keep]
        self.targets = targets[keep].tolist()

    def _check_integrity(self) -> bool:  # the local copy is JPEG-derived: its MD5s differ by design
        return True


class CIFAR10Test(torchvision.datasets.CIFAR10):
    def _check_integrity(self) -> bool:
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    train_tf = T.Compose(
        [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
    )
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    train_set = ImbalancedCIFAR10(args.root, train=True, download=False, transform=train_tf)
    test_set = CIFAR10Test(args.root, train=False, download=False, transform=test_tf)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, pin_memory=True
    )
    test_loader = torch.utils.data.DataLoader(
        test_set, batch_size=100, shuffle=False, num_workers=args.workers, pin_memory=True
    )

    model = ResNet32(n_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:  # cifar_train.py's adjust_learning_rate: 5-epoch warm-up
            group["lr"] = 0.1 * (epoch + 1) / 5 if epoch < 5 else 0.1
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        preds, labels = [], []
        with torch.no_grad():
            for x, y in test_loader:
                preds.append(model(x).argmax(1))
                labels.append(y)
        pred, label = torch.cat(preds), torch.cat(labels)
        per_class = [(pred[label == c] == c).float().mean().item() for c in range(10)]
        print(
            f"epoch {epoch + 1}: loss {loss.item():.4f}  test acc {100 * (pred == label).float().mean():.2f}%  "
            f"balanced {100 * sum(per_class) / 10:.2f}%  {time.perf_counter() - t0:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
