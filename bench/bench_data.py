"""Data pipeline throughput: focalbench's device-resident batches against a torchvision DataLoader.

Both sides produce the same thing from the same images: one shuffled epoch of CIFAR-10-LT (rho = 100,
from ``FOCALBENCH_DATA`` or ``<repo>/../shared/data``; random uint8 images of the same count when no copy is
found), batch size 128, random crop with 4-pixel zero padding, horizontal flip, normalisation, batches
on the training device (CUDA when present, else the CPU).

- focalbench: :func:`focalbench.data.iter_train_batches` (one randperm, batched crop/flip by indexing).
- torchvision: a ``Dataset`` returning ``transforms.Compose([RandomCrop(32, padding=4),
  RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)])`` of a PIL image per sample, through
  ``DataLoader(batch_size=128, shuffle=True, num_workers=0)``, each batch then moved to the device.
  ``num_workers=0`` because workers only compete for the same cores on a small CPU box.

Each side runs one warm-up epoch (``quick``: a partial one), then one timed epoch. Run:
``python bench/bench_data.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from focalbench.data import SplitData, iter_train_batches, load_data
from focalbench.data.cifar import channel_mean_std
from focalbench.errors import DataError

BATCH_SIZE = 128
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_benchmark_data(device: torch.device) -> tuple[SplitData, str]:
    """CIFAR-10-LT rho=100 on ``device``, or random images of the same size when no copy is found."""
    root = os.environ.get("FOCALBENCH_DATA") or str(SHARED_DATA)
    cfg = SimpleNamespace(
        name="cifar10_lt",
        imbalance=100.0,
        profile="exp",
        val_fraction=0.1,
        data_seed=0,
        root=root,
        augment=True,
    )
    try:
        return load_data(cfg, device), f"CIFAR-10-LT rho=100 from {root}"
    except DataError:
        n_train = 11164  # CIFAR-10-LT rho=100 training split with a 10 % validation split
        x = torch.randint(
            0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        )
        y = torch.arange(n_train) % 10
        mean, std = channel_mean_std(x)
        data = SplitData(
            name="cifar10_lt", kind="image", n_classes=10, class_names=[str(c) for c in range(10)],
            train_x=x.to(device), train_y=y.to(device), val_x=x[:0].to(device), val_y=y[:0].to(device),
            test_x=x[:0].to(device), test_y=y[:0].to(device), train_counts=[], longtail_counts=[],
            mean=mean.to(device), std=std.to(device), augment=True, info={},
        )  # fmt: skip
        return data, f"random uint8 images ({n_train}; no CIFAR-10 copy at {root})"


def time_focalbench(data: SplitData, max_images: int | None) -> tuple[float, int]:
    """Seconds and images for one epoch (or its first ``max_images``) of ``iter_train_batches``."""
    generator = torch.Generator().manual_seed(0)
    images = 0
    synchronize(data.device)
    start = time.perf_counter()
    for _x, y in iter_train_batches(data, BATCH_SIZE, generator, augment=True):
        images += y.numel()
        if max_images is not None and images >= max_images:
            break
    synchronize(data.device)
    return time.perf_counter() - start, images


class PerSampleDataset(torch.utils.data.Dataset):
    """CIFAR-style dataset: HWC uint8 images, one PIL image and one transform call per sample."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def make_dataloader(
    data: SplitData, batch_size: int = BATCH_SIZE, generator: torch.Generator | None = None
) -> torch.utils.data.DataLoader:
    """The reference a user would otherwise write: per-sample PIL transforms in a torchvision DataLoader."""
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean.flatten().tolist(), data.std.flatten().tolist()),
        ]
    )
    images = data.train_x.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    dataset = PerSampleDataset(images, data.train_y.cpu().numpy(), transform)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=0, generator=generator
    )


def time_dataloader(loader, device: torch.device, max_images: int | None) -> tuple[float, int]:
    """Seconds and images for one epoch (or its first ``max_images``) of the DataLoader, batches on ``device``."""
    images = 0
    synchronize(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        images += y.numel()
        if max_images is not None and images >= max_images:
            break
    synchronize(device)
    return time.perf_counter() - start, images


def run(quick: bool = False) -> dict:
    """Measure both pipelines; ``quick`` times only the first 2,048 images of each (after a short warm-up).

    Returns:
        ``{"source", "device", "batch_size", "n_images", "focalbench_images_per_s",
        "torchvision_images_per_s", "speedup"}`` (speedup = focalbench / torchvision).
    """
    device = default_device()
    data, source = load_benchmark_data(device)
    max_images = 2048 if quick else None
    warmup_images = 512 if quick else None

    time_focalbench(data, warmup_images)
    fb_seconds, fb_images = time_focalbench(data, max_images)

    loader = make_dataloader(data)
    time_dataloader(loader, device, warmup_images)
    tv_seconds, tv_images = time_dataloader(loader, device, max_images)

    fb_rate, tv_rate = fb_images / fb_seconds, tv_images / tv_seconds
    return {
        "source": source,
        "device": str(device),
        "batch_size": BATCH_SIZE,
        "n_images": fb_images,
        "focalbench_images_per_s": fb_rate,
        "torchvision_images_per_s": tv_rate,
        "speedup": fb_rate / tv_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="time 2,048 images per pipeline instead of an epoch"
    )
    args = parser.parse_args()
    result = run(quick=args.quick)
    print(f"data: {result['source']}; device: {result['device']}; batch size {result['batch_size']}; "
          f"{result['n_images']} images per timed pass; threads: {torch.get_num_threads()}")  # fmt: skip
    print(f"{'pipeline':<46} {'images/s':>12}")
    print(f"{'focalbench iter_train_batches (on device)':<46} {result['focalbench_images_per_s']:>12,.0f}")
    print(
        f"{'torchvision DataLoader + per-sample transforms':<46} {result['torchvision_images_per_s']:>12,.0f}"
    )
    print(f"{'ratio (focalbench / torchvision)':<46} {result['speedup']:>11.1f}x")


if __name__ == "__main__":
    main()
