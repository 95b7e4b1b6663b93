"""mobilenetv2: MobileNetV2 (width 1.0) at 224x224: inverted residuals, depthwise convs, ReLU6.

ReLU6 exports as Clip(0, 6); BatchNorm is kept as BatchNormalization nodes; the head uses nn.Flatten
(an ONNX Flatten node, no shape arithmetic).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.common import Reference, export_torch, init_conv_bn

SEED = 3
INPUT_SHAPE = (3, 224, 224)
# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm, followed by ReLU6 when `act`."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear), with a skip when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(c_in, hidden, 1, 1))
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, c_out, 1, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out = self.block(x)
        return x + out if self.use_skip else out


class MobileNetV2(nn.Module):
    """MobileNetV2, width multiplier 1.0."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
        c_in = 32
        for t, c, n, s in SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(conv_bn(c_in, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, 3, 224, 224) images to (batch, num_classes) logits."""
        return self.classifier(self.flatten(self.pool(self.features(x))))


def make_model() -> MobileNetV2:
    """Return a MobileNetV2 with seeded weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(SEED)
    model = MobileNetV2()
    init_conv_bn(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def export(path: Path) -> Reference:
    """Write the model to `path` (BatchNormalization nodes kept); return a reference pair."""
    return export_torch(make_model(), INPUT_SHAPE, path, SEED, fold_constants=False)
