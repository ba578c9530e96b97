"""Your own image folders are not flipped by default (data.flip=false); CIFAR's flip and run ids stay."""

from __future__ import annotations

import pytest
import torch

from focalbench.config import compose
from focalbench.data import load_data
from focalbench.data.batches import _draw_epoch
from focalbench.examples import make_images
from focalbench.identity import identity_config, run_id


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FOCALBENCH_CACHE", str(tmp_path / "cache"))


def test_an_image_folder_trains_without_flips_by_default_and_with_them_on_request(tmp_path):
    folder = make_images(tmp_path / "shapes", counts=(10, 6, 4), size=16)
    cfg = {"name": "image_folder", "path": str(folder), "image_size": 16}
    plain, flipped = load_data(cfg), load_data({**cfg, "flip": True})
    assert plain.augment and not plain.flip and flipped.flip
    assert (
        plain.info["augmentation"]
        == "random crop (4-pixel zero padding), no horizontal flip (data.flip=false)"
    )
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    perm, offsets, flips = _draw_epoch(plain, g1, augment=True)
    perm2, offsets2, flips2 = _draw_epoch(flipped, g2, augment=True)
    assert not flips.any() and flips2.any()
    # The flip bits are still drawn: the permutation and crops, and every later epoch, are those of a flipping
    # run, so CIFAR (which always flips) draws exactly what it drew before data.flip existed.
    assert torch.equal(perm, perm2) and torch.equal(offsets, offsets2)
    assert torch.equal(torch.randint(0, 9, (5,), generator=g1), torch.randint(0, 9, (5,), generator=g2))


def test_flip_true_keeps_the_run_ids_of_records_made_before_the_key(tmp_path):
    from omegaconf import OmegaConf

    folder = make_images(tmp_path / "shapes", counts=(10, 6, 4), size=16)
    base = ["data=image_folder", f"data.path={folder}", "model=cnn", "data.resplit=false"]
    old = OmegaConf.to_container(compose([*base, "data.flip=true"]))
    del old["data"]["flip"]  # an image-folder config from before data.flip: it flipped
    assert run_id(old) == run_id(compose([*base, "data.flip=true"]))
    assert run_id(compose(base)) != run_id(old)  # the new default is another computation
    assert "flip" not in identity_config(compose(["data=cifar10_lt", "model=cnn"]))["data"]


def test_data_info_says_whether_images_are_flipped(tmp_path, monkeypatch, capsys):
    from focalbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    folder = make_images(tmp_path / "shapes", counts=(10, 6, 4), size=16)
    assert main(["data", "info", "data=image_folder", f"data.path={folder}", "data.image_size=16"]) == 0
    assert "augmentation: random crop (4-pixel zero padding), no horizontal flip (data.flip=false)" in (
        capsys.readouterr().out
    )
    assert main(["data", "info", "data=image_folder", f"data.path={folder}", "data.flip=yes"]) == 2
    assert "data.flip" in capsys.readouterr().err
