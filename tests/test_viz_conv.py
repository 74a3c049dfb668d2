"""dlkit.viz.conv without a display: filters, feature maps, saliency and the explorer."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from dlkit.nn import LeNet, ResNet
from dlkit.viz import feature_maps, plot_feature_maps, plot_filters, plot_saliency, saliency
from dlkit.viz.conv import KERNEL_PRESETS, ConvExplorer, conv_explorer, demo_image


def test_plot_filters_one_panel_per_filter() -> None:
    fig = plot_filters(torch.randn(6, 2, 3, 3), in_channel=1)
    assert len([ax for ax in fig.axes if ax.images]) == 6
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(O, C, KH, KW\)"):
        plot_filters(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"in_channel must lie in \[0, 2\)"):
        plot_filters(np.zeros((4, 2, 3, 3)), in_channel=2)


def test_feature_maps_equal_the_layer_output_and_keep_the_mode() -> None:
    torch.manual_seed(0)
    model = LeNet().train()
    x = torch.randn(2, 1, 8, 8)
    conv = model.features[0]
    maps = feature_maps(model, conv, x)
    torch.testing.assert_close(maps, F.conv2d(x, conv.weight, conv.bias, padding=1))
    assert model.training  # restored
    fig = plot_feature_maps(maps[:1])
    assert len([ax for ax in fig.axes if ax.images]) == maps.shape[1]
    plt.close(fig)
    with pytest.raises(ValueError, match="did not run"):
        feature_maps(model, torch.nn.Linear(2, 2), x)


def test_saliency_is_the_input_gradient_of_the_class_logit() -> None:
    torch.manual_seed(0)
    model = ResNet()
    image = torch.randn(1, 8, 8)
    sal, k = saliency(model, image, target=3)
    assert k == 3 and sal.shape == (8, 8)
    model.eval()
    x = image[None].clone().requires_grad_(True)
    model(x)[0, 3].backward()
    np.testing.assert_allclose(sal, x.grad[0].abs().amax(0).numpy(), rtol=1e-6)
    _, predicted = saliency(model, image)
    assert predicted == int(model(image[None]).argmax())
    plt.close(plot_saliency(image, sal, title="t"))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        saliency(model, image[None])


def test_explorer_output_matches_torch_and_shape_formula() -> None:
    explorer = ConvExplorer(demo_image(20))
    explorer.preset.value = "sharpen"
    np.testing.assert_allclose(explorer.kernel, KERNEL_PRESETS["sharpen"])
    explorer.stride.value, explorer.padding.value, explorer.dilation.value = 2, 1, 2
    expected = F.conv2d(torch.tensor(explorer.image)[None, None], torch.tensor(explorer.kernel)[None, None],
                        stride=2, padding=1, dilation=2)[0, 0].numpy()  # fmt: skip
    np.testing.assert_allclose(explorer.output(), expected, atol=1e-12)
    assert f"<b>{expected.shape[0]}</b>" in explorer.shape_label.value
    explorer.cells[4].value = 9.0  # draw your own kernel
    assert explorer.kernel[1, 1] == 9.0
    plt.close(explorer.figure())


def test_explorer_reports_a_kernel_that_does_not_fit() -> None:
    explorer = ConvExplorer(np.ones((4, 4)))
    explorer.dilation.value = 3  # spans 7 pixels > 4 + 0 padding
    assert "no output" in explorer.shape_label.value and "larger than the padded input" in (
        explorer.shape_label.value
    )
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        ConvExplorer(np.ones((1, 4, 4)))


def test_conv_explorer_returns_a_widget() -> None:
    widget = conv_explorer()
    assert widget.children and widget.children[-1].outputs is not None
