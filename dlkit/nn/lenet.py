r"""A LeNet-style convolutional network for small images, described by a config.

LeNet-5 (LeCun et al., 1998) set the pattern every CNN since has followed: a few
*convolution → nonlinearity → pooling* stages that turn pixels into a stack of smaller
feature maps, then fully connected layers that classify them. Here each stage is

.. math:: h \mapsto \mathrm{MaxPool}_{2\times2}\big(\mathrm{ReLU}(\mathrm{Conv}_{k\times k}(h))\big)

with "same" padding :math:`p = \lfloor k/2 \rfloor` (odd :math:`k`), so a stage keeps the size and
the pooling halves it (rounding down): an :math:`8\times8` digit becomes :math:`4\times4` and then
:math:`2\times2`. The classifier sees ``channels[-1] · H' · W'`` numbers, computed with the same
output-size formula as :func:`dlkit.scratch.conv_output_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from torch import Tensor, nn

from dlkit.scratch.conv import conv_output_size

__all__ = ["LeNet", "LeNetConfig"]


@dataclass(frozen=True)
class LeNetConfig:
    """Shapes of a :class:`LeNet`: images ``(in_channels, *image_size)``, ``num_classes`` logits.

    Defaults fit scikit-learn's 8×8 digits (13,706 parameters); the classic LeNet-5 for
    MNIST is ``LeNetConfig(image_size=(28, 28), kernel_size=5, channels=(6, 16),
    hidden=(120, 84))`` (with "same" padding, so 28 → 14 → 7).
    """

    in_channels: int = 1
    image_size: tuple[int, int] = (8, 8)
    num_classes: int = 10
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    hidden: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {self.kernel_size}")
        if not self.channels:
            raise ValueError("channels must name at least one convolution stage")
        if min(self.image_size) < 2 ** len(self.channels):
            raise ValueError(
                f"an image of size {self.image_size} is too small for {len(self.channels)} "
                f"stages of 2×2 pooling; expected at least {2 ** len(self.channels)} pixels a side"
            )

    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, H', W')`` after the last stage: each stage keeps the size, each pool halves it."""
        h, w = self.image_size
        pad = self.kernel_size // 2
        for _ in self.channels:
            h = conv_output_size(h, self.kernel_size, padding=pad)  # = h ("same")
            w = conv_output_size(w, self.kernel_size, padding=pad)
            h, w = conv_output_size(h, 2, stride=2), conv_output_size(w, 2, stride=2)  # pool
        return self.channels[-1], h, w


class LeNet(nn.Module):
    """Images ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.

    ``features`` holds the convolution stages (``Conv2d``, ``ReLU``, ``MaxPool2d`` per stage)
    and ``classifier`` the fully connected layers, so ``model.features[0].weight`` are the
    first layer's filters, shape ``(channels[0], in_channels, k, k)``.
    """

    def __init__(self, config: LeNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LeNetConfig()
        layers: list[nn.Module] = []
        c_in = config.in_channels
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, config.kernel_size, padding=config.kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        c, h, w = config.feature_shape()
        widths = [c * h * w, *config.hidden]
        head: list[nn.Module] = [nn.Flatten()]
        for a, b in pairwise(widths):
            head += [nn.Linear(a, b), nn.ReLU()]
        head.append(nn.Linear(widths[-1], config.num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.config.in_channels, *self.config.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        return self.classifier(self.features(x))  # (B, C, H', W') → (B, num_classes)
