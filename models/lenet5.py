"""lenet5: classic LeNet-5 on 1x28x28 inputs.

Conv 6@5x5 pad 2, ReLU, MaxPool 2, Conv 16@5x5, ReLU, AvgPool 2, Flatten, FC 120-84-10 (Gemm).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.common import Reference, export_torch, init_conv_bn

SEED = 1
INPUT_SHAPE = (1, 28, 28)


class LeNet5(nn.Module):
    """LeNet-5 with ReLU activations, max pooling after conv1 and average pooling after conv2."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, 1, 28, 28) images to (batch, num_classes) logits."""
        return self.classifier(self.features(x))


def make_model() -> LeNet5:
    """Return a LeNet5 with seeded weights, in eval mode."""
    torch.manual_seed(SEED)
    model = LeNet5()
    init_conv_bn(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def export(path: Path) -> Reference:
    """Write the model to `path`; return a reference input/output pair."""
    return export_torch(make_model(), INPUT_SHAPE, path, SEED)
