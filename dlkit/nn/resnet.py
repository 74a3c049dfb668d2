r"""A small residual network (the ResNet idea, He et al. 2015), for images of any size.

A residual block learns a *correction* to its input instead of a whole new mapping:

.. math:: y = \mathrm{ReLU}\big(F(x) + S(x)\big), \qquad
          F(x) = \mathrm{BN}(\mathrm{Conv}_{3\times3}(\mathrm{ReLU}(\mathrm{BN}(\mathrm{Conv}_{3\times3}(x)))))

where the shortcut :math:`S` is the identity when shapes agree and a *projection*
(a strided :math:`1\times1` convolution and BatchNorm) when the block changes the number of
channels or the resolution. With an identity shortcut,
:math:`\partial y/\partial x = \operatorname{diag}(\mathrm{ReLU}'(F(x) + x))\,(\partial F/\partial x + I)`:
the gradient has a path back that no weight matrix multiplies (only the ReLU's 0/1 mask),
which lets very deep networks train. With ``zero_init_residual`` the last BatchNorm's
scale :math:`\gamma` starts at 0, so :math:`F(x) = 0` and every block starts as :math:`\mathrm{ReLU}(S(x))`.

The network: a 3×3 stem, stages of :class:`BasicBlock` (each stage after the first halves the
resolution with stride 2 and projects the shortcut), global average pooling (so any image size
works) and a linear classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNet", "ResNetConfig"]


class BasicBlock(nn.Module):
    """``(B, c_in, H, W)`` → ``(B, c_out, ⌈H/stride⌉, ⌈W/stride⌉)``: ReLU(F(x) + S(x))."""

    def __init__(self, c_in: int, c_out: int, *, stride: int = 1,
                 zero_init_residual: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        if stride != 1 or c_in != c_out:  # projection: match channels and resolution
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.shortcut = nn.Identity()
        if zero_init_residual:
            nn.init.zeros_(self.bn2.weight)  # F(x) = 0 at the start: the block is ReLU(S(x))

    def residual(self, x: Tensor) -> Tensor:
        """The branch :math:`F(x)`, shape ``(B, c_out, H', W')``."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


@dataclass(frozen=True)
class ResNetConfig:
    """A :class:`ResNet`: ``widths[i]`` channels and ``blocks[i]`` blocks in stage ``i``.

    Defaults fit 8×8 digits (8×8 → 4×4 feature maps); add stages for larger images.
    """

    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32)
    blocks: tuple[int, ...] = (1, 1)
    zero_init_residual: bool = True

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError(
                f"widths and blocks need one entry per stage, got {self.widths} and {self.blocks}"
            )
        if min(self.blocks) < 1:
            raise ValueError(f"every stage needs at least one block, got blocks={self.blocks}")


class ResNet(nn.Module):
    """Images ``(B, in_channels, H, W)`` (any ``H, W``) → logits ``(B, num_classes)``."""

    def __init__(self, config: ResNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ResNetConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(config.widths[0]),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        c_in = config.widths[0]
        for i, (width, count) in enumerate(zip(config.widths, config.blocks, strict=True)):
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1  # downsample at the start of a stage
                stages.append(BasicBlock(c_in, width, stride=stride,
                                         zero_init_residual=config.zero_init_residual))  # fmt: skip
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (B, C, H', W') → (B, C, 1, 1): any image size
        self.head = nn.Linear(c_in, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.config.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        h = self.stages(self.stem(x))  # (B, widths[-1], H', W')
        return self.head(self.pool(h).flatten(1))  # (B, num_classes)
