"""Device-resident batching: one shuffle per epoch, batched crop+flip, normalisation, reproducibility."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from focalbench.data import SplitData, iter_eval_batches, iter_train_batches
from focalbench.data.batches import crop_flip, normalise
from focalbench.data.cifar import channel_mean_std
from focalbench.errors import ConfigError


def image_data(n_train: int = 37, n_test: int = 11, augment: bool = True, seed: int = 0) -> SplitData:
    """Random uint8 images; mean/std from the training images, as the CIFAR loader does."""
    gen = torch.Generator().manual_seed(seed)
    train_x = torch.randint(0, 256, (n_train, 3, 32, 32), generator=gen, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (n_test, 3, 32, 32), generator=gen, dtype=torch.uint8)
    mean, std = channel_mean_std(train_x)
    return SplitData(
        name="cifar10_lt",
        kind="image",
        n_classes=10,
        class_names=[str(c) for c in range(10)],
        train_x=train_x,
        train_y=torch.arange(n_train) % 10,
        val_x=train_x[:0],
        val_y=torch.zeros(0, dtype=torch.int64),
        test_x=test_x,
        test_y=torch.arange(n_test) % 10,
        train_counts=torch.bincount(torch.arange(n_train) % 10, minlength=10).tolist(),
        longtail_counts=torch.bincount(torch.arange(n_train) % 10, minlength=10).tolist(),
        mean=mean,
        std=std,
        augment=augment,
        info={},
    )


def vector_data(n_train: int = 10) -> SplitData:
    """Vectors whose single feature is the sample's index, so batches reveal the order."""
    x = torch.arange(n_train, dtype=torch.float32)[:, None]
    y = torch.arange(n_train) % 2
    return SplitData(
        name="synthetic",
        kind="vector",
        n_classes=2,
        class_names=["background", "foreground"],
        train_x=x,
        train_y=y,
        val_x=x[:0],
        val_y=y[:0],
        test_x=x,
        test_y=y,
        train_counts=[5, 5],
        longtail_counts=[5, 5],
        mean=None,
        std=None,
        augment=True,
        info={},
    )


def test_one_randperm_covers_every_index_once_and_keeps_last_partial_batch():
    data = vector_data(10)
    batches = list(iter_train_batches(data, 4, torch.Generator().manual_seed(7)))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    order = torch.cat([x[:, 0] for x, _ in batches]).long()
    assert sorted(order.tolist()) == list(range(10))
    # The epoch order is exactly the first randperm the generator gives.
    assert torch.equal(order, torch.randperm(10, generator=torch.Generator().manual_seed(7)))
    labels = torch.cat([y for _, y in batches])
    assert torch.equal(labels, data.train_y[order])


def test_vectors_are_never_augmented():
    data = vector_data(10)
    for x, _ in iter_train_batches(data, 3, torch.Generator().manual_seed(0), augment=True):
        assert x.dtype == torch.float32 and x.shape[1] == 1


def test_same_seed_same_batches_different_seed_different():
    data = image_data()

    def epoch(seed: int) -> list[torch.Tensor]:
        return [x for x, _ in iter_train_batches(data, 8, torch.Generator().manual_seed(seed))]

    a, b, c = epoch(3), epoch(3), epoch(4)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c, strict=True))


def test_consecutive_epochs_are_reshuffled():
    data = vector_data(50)
    gen = torch.Generator().manual_seed(0)
    first = torch.cat([x[:, 0] for x, _ in iter_train_batches(data, 8, gen)])
    second = torch.cat([x[:, 0] for x, _ in iter_train_batches(data, 8, gen)])
    assert sorted(second.tolist()) == list(range(50))
    assert not torch.equal(first, second)


def test_crops_are_real_crops_of_the_zero_padded_image():
    data = image_data(n_train=40)
    seed = 11
    order = torch.randperm(40, generator=torch.Generator().manual_seed(seed))
    batches = list(iter_train_batches(data, 16, torch.Generator().manual_seed(seed)))
    got = torch.cat([x for x, _ in batches])
    seen_offsets, seen_flips = set(), set()
    for k, i in enumerate(order.tolist()):
        padded = F.pad(data.train_x[i : i + 1], (4, 4, 4, 4))
        matches = []
        for dy in range(9):
            for dx in range(9):
                window = padded[..., dy : dy + 32, dx : dx + 32]
                for flip in (False, True):
                    candidate = normalise(data, window.flip(-1) if flip else window)[0]
                    if torch.equal(candidate, got[k]):
                        matches.append((dy, dx, flip))
        assert len(matches) == 1, f"sample {k}: {len(matches)} matching crops"
        seen_offsets.add(matches[0][:2])
        seen_flips.add(matches[0][2])
    assert len(seen_offsets) > 10 and seen_flips == {False, True}


def test_crop_flip_matches_slicing():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    dy, dx = torch.tensor([0, 8, 3]), torch.tensor([8, 0, 5])
    flip = torch.tensor([False, True, True])
    out = crop_flip(images, dy, dx, flip)
    padded = F.pad(images, (4, 4, 4, 4))
    for b in range(3):
        expected = padded[b, :, dy[b] : dy[b] + 32, dx[b] : dx[b] + 32]
        assert torch.equal(out[b], expected.flip(-1) if flip[b] else expected)
    # Offset (4, 4) without a flip is the identity.
    center = torch.full((3,), 4)
    assert torch.equal(crop_flip(images, center, center, torch.zeros(3, dtype=torch.bool)), images)


def test_no_augmentation_means_plain_normalised_images():
    data = image_data(augment=False)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    got = torch.cat([x for x, _ in iter_train_batches(data, 10, gen)])
    assert torch.equal(got, normalise(data, data.train_x[order]))
    # augment=False overrides data.augment=True.
    data_aug = image_data(augment=True)
    got2 = torch.cat(
        [x for x, _ in iter_train_batches(data_aug, 10, torch.Generator().manual_seed(0), augment=False)]
    )
    assert torch.equal(got2, got)


def test_normalisation_uses_mean_and_std():
    data = image_data(n_train=64)
    x, y = next(iter_eval_batches(data, "test", 100))
    assert x.dtype == torch.float32 and x.shape == (11, 3, 32, 32) and torch.equal(y, data.test_y)
    assert torch.allclose(x, (data.test_x.float() / 255 - data.mean) / data.std, atol=1e-6)
    train = torch.cat([x for x, _ in iter_eval_batches(data, "train", 16)])
    # mean/std come from the training images, so normalised training data is standardised per channel.
    assert torch.allclose(train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_eval_batches_in_order_and_empty_split():
    data = image_data()
    sizes = [len(y) for _, y in iter_eval_batches(data, "test", 4)]
    assert sizes == [4, 4, 3]
    assert list(iter_eval_batches(data, "val", 4)) == []
    with pytest.raises(ConfigError, match="split"):
        list(iter_eval_batches(data, "holdout", 4))
    with pytest.raises(ConfigError, match="batch_size"):
        list(iter_train_batches(data, 0, torch.Generator()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_batches_match_cpu_batches():
    cpu = image_data()
    cuda = SplitData(**{k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in vars(cpu).items()})
    a = [x for x, _ in iter_train_batches(cpu, 8, torch.Generator().manual_seed(5))]
    b = [x for x, _ in iter_train_batches(cuda, 8, torch.Generator().manual_seed(5))]
    assert all(v.is_cuda for v in b)
    assert all(torch.allclose(u, v.cpu(), atol=1e-6) for u, v in zip(a, b, strict=True))
