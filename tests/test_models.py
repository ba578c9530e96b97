"""Model zoo: shapes, parameter counts, ResNet-32 option-A shortcuts, CPU fast paths, FLOP counting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from focalbench.errors import ConfigError
from focalbench.models import build_model, count_parameters, flops_per_example
from focalbench.models.resnet32 import PadShortcut
from focalbench.registry import MODELS

IMAGE = (3, 32, 32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ("cfg", "input_shape"),
    [
        (SimpleNamespace(name="mlp"), (20,)),
        (SimpleNamespace(name="mlp", hidden=[16], dropout=0.1, norm="layer"), IMAGE),
        (SimpleNamespace(name="cnn"), IMAGE),
        (SimpleNamespace(name="resnet32"), IMAGE),
    ],
)
def test_forward_shape_and_backward(cfg, input_shape):
    model = build_model(cfg, input_shape, n_classes=7)
    logits = model(torch.randn(4, *input_shape))
    assert logits.shape == (4, 7) and logits.dtype == torch.float32
    logits.logsumexp(dim=1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_config_styles_dict_and_omegaconf_struct():
    cfg = OmegaConf.create({"name": "mlp", "hidden": [8, 4]})
    OmegaConf.set_struct(cfg, True)  # missing optional fields must still fall back to defaults
    assert count_parameters(build_model(cfg, (5,), 3)) == count_parameters(build_model(dict(cfg), (5,), 3))


def test_mlp_parameter_count_by_hand():
    # Linear 20->8 without bias (BatchNorm follows) + BatchNorm 2*8 + Linear 8->3 with bias.
    model = build_model(SimpleNamespace(name="mlp", hidden=[8]), (20,), 3)
    assert count_parameters(model) == 20 * 8 + 2 * 8 + 8 * 3 + 3


def test_parameter_counts():
    resnet = build_model(SimpleNamespace(name="resnet32"), IMAGE, 10)
    assert abs(count_parameters(resnet) - 0.46e6) <= 0.01e6
    cnn = build_model(SimpleNamespace(name="cnn"), IMAGE, 10)
    assert 0.2e6 <= count_parameters(cnn) <= 0.6e6
    frozen = build_model(SimpleNamespace(name="mlp", hidden=[8]), (20,), 3)
    frozen.net[-1].weight.requires_grad_(False)
    assert count_parameters(frozen) == 20 * 8 + 2 * 8 + 3


def test_resnet32_has_option_a_shortcuts():
    model = build_model(SimpleNamespace(name="resnet32"), IMAGE, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # Stem + 3 stages x 5 blocks x 2 convs, all 3x3: no 1x1 projection shortcuts.
    assert len(convs) == 31 and all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [16] * 11 + [32] * 10 + [64] * 10
    pads = [m for m in model.modules() if isinstance(m, PadShortcut)]
    assert len(pads) == 2 and all(count_parameters(p) == 0 for p in pads)
    x = torch.randn(2, 16, 32, 32)
    out = pads[0](x)
    assert out.shape == (2, 32, 16, 16)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_cnn_channels_last_and_bf16_autocast():
    model = build_model(SimpleNamespace(name="cnn"), IMAGE, 10).eval()
    x = torch.randn(8, *IMAGE)
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(model_cl(x_cl), reference, atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model_cl(x_cl)
    assert low.dtype == torch.bfloat16
    assert (low.float() - reference).abs().max() <= 0.05 * reference.abs().max() + 1e-3

    model_cl.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model_cl(x_cl), torch.arange(8))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model_cl.parameters())


def test_cnn_fields_are_used():
    model = build_model(SimpleNamespace(name="cnn", widths=[8, 16, 32], stem=4, logit_scale=1.0), IMAGE, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 8, 16, 16, 32, 32]
    assert count_parameters(model) < count_parameters(build_model(SimpleNamespace(name="cnn"), IMAGE, 10))


@pytest.mark.parametrize(
    ("cfg", "input_shape", "message"),
    [
        (SimpleNamespace(name="vit"), IMAGE, "cnn, linear, mlp, resnet32"),
        (SimpleNamespace(), IMAGE, "model.name"),
        (SimpleNamespace(name="cnn", widths=[32, 64]), IMAGE, "model.widths"),
        (SimpleNamespace(name="cnn"), (20,), "divisible by 8"),
        (SimpleNamespace(name="resnet32"), (3, 30, 30), "divisible by 4"),
        (SimpleNamespace(name="mlp", hidden=[0]), (20,), "model.hidden"),
        (SimpleNamespace(name="mlp", dropout=1.0), (20,), "model.dropout"),
        (SimpleNamespace(name="mlp", norm="group"), (20,), "batch, layer, none"),
    ],
)
def test_bad_configs_raise_config_error(cfg, input_shape, message):
    with pytest.raises(ConfigError, match=message):
        build_model(cfg, input_shape, 10)


def test_model_names_all_build():
    for name in MODELS.names():
        shape = (12,) if name == "mlp" else IMAGE
        assert isinstance(build_model({"name": name}, shape, 4), nn.Module)


def test_flops_per_example_hand_count():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),  # 4*5*5 outputs x 2*3*3 MACs = 1800 MACs
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),  # 4*3*3 outputs x 2*3*3 MACs = 648 MACs
        nn.Flatten(),
        nn.Linear(36, 3),  # 36*3 = 108 MACs
    )
    model.train()
    assert flops_per_example(model, (2, 5, 5)) == 2 * (1800 + 648 + 108)
    assert model.training  # mode restored


def test_flops_per_example_resnet32():
    # ResNet-32 on 32x32 inputs is usually quoted at about 69 M multiply-adds.
    flops = flops_per_example(build_model({"name": "resnet32"}, IMAGE, 10), IMAGE)
    assert 2 * 68e6 < flops < 2 * 70e6
