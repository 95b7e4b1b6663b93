"""resnet18: ResNet-18 (BasicBlock, BatchNorm kept as nodes, residual Add) at 224x224.

The head flattens with `x.reshape(x.shape[0], -1)`, so the exported graph computes the flatten
shape at run time (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), as many real exports do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.common import Reference, export_torch, init_conv_bn

SEED = 2
INPUT_SHAPE = (3, 224, 224)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-conv-BN shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 for 224x224 RGB inputs."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, 3, 224, 224) images to (batch, num_classes) logits."""
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(x.reshape(x.shape[0], -1))


def make_model() -> ResNet18:
    """Return a ResNet18 with seeded weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(SEED)
    model = ResNet18()
    # Gain < 1 keeps the residual stream from growing block after block with fixed BN statistics.
    init_conv_bn(model, torch.Generator().manual_seed(SEED), gain=0.7)
    return model.eval()


def export(path: Path) -> Reference:
    """Write the model to `path` (BatchNormalization nodes kept); return a reference pair."""
    return export_torch(make_model(), INPUT_SHAPE, path, SEED, fold_constants=False)
