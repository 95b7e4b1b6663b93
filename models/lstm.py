"""lstm: a sequence classifier over (batch, 20, 32) inputs.

2-layer nn.LSTM(32, 64, batch_first) -> last time step -> Linear(64, 5). Exports as two ONNX LSTM
nodes (one per layer) with batch-first Transpose/Squeeze glue, and zero initial states built at run
time from the input's batch size (Shape -> Gather -> Unsqueeze -> Concat -> ConstantOfShape).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.common import Reference, export_torch

SEED = 5
SEQ, D_IN, D_HIDDEN, N_LAYERS, N_CLASSES = 20, 32, 64, 2, 5
INPUT_SHAPE = (SEQ, D_IN)


class LSTMClassifier(nn.Module):
    """LSTM over the sequence, classifier on the last time step's hidden output."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(D_IN, D_HIDDEN, num_layers=N_LAYERS, batch_first=True)
        self.head = nn.Linear(D_HIDDEN, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, SEQ, D_IN) to (batch, N_CLASSES) logits."""
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


def make_model() -> LSTMClassifier:
    """Return the classifier with seeded (PyTorch-default) initialisation, in eval mode."""
    torch.manual_seed(SEED)
    return LSTMClassifier().eval()


def export(path: Path) -> Reference:
    """Write the model to `path`; return a reference input/output pair."""
    return export_torch(make_model(), INPUT_SHAPE, path, SEED)
