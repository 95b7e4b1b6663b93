"""transformer: a 2-layer encoder (d_model 256, 4 heads, FFN 1024, GELU) over (batch, 16, 256).

Input Linear projection -> nn.TransformerEncoder (batch_first, post-norm) -> mean over the
sequence -> Linear head to 10 classes. The exported graph carries the attention's run-time shape
arithmetic (Shape/Gather/Concat/Reshape), LayerNormalization, GELU as Erf, MatMul, Softmax and
Transpose.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.common import Reference, export_torch

SEED = 4
SEQ, D_MODEL, N_HEAD, D_FF, N_LAYERS, N_CLASSES = 16, 256, 4, 1024, 2, 10
INPUT_SHAPE = (SEQ, D_MODEL)


class TransformerClassifier(nn.Module):
    """Projection + TransformerEncoder + mean pool + classifier head."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        layer = nn.TransformerEncoderLayer(
            D_MODEL, N_HEAD, D_FF, dropout=0.0, activation="gelu", batch_first=True
        )
        # enable_nested_tensor=False: no nested-tensor fast path; the exporter traces the plain ops.
        self.encoder = nn.TransformerEncoder(layer, N_LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (batch, SEQ, D_MODEL) to (batch, N_CLASSES) logits."""
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


def init_weights(model: nn.Module, gen: torch.Generator) -> None:
    """Give every parameter its own seeded random values.

    nn.TransformerEncoder deep-copies one layer N times, so with default init all layers would hold
    identical weights (and the exporter would deduplicate them into Identity nodes); LayerNorm and
    attention biases would be exactly 1/0. Matrices get Xavier-uniform values, LayerNorm weights
    uniform [0.8, 1.2], all biases uniform [-0.05, 0.05].
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                nn.init.xavier_uniform_(param, generator=gen)
            elif name.endswith("weight"):
                param.uniform_(0.8, 1.2, generator=gen)
            else:
                param.uniform_(-0.05, 0.05, generator=gen)


def make_model() -> TransformerClassifier:
    """Return the classifier with seeded weights, in eval mode."""
    torch.manual_seed(SEED)
    model = TransformerClassifier()
    init_weights(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def export(path: Path) -> Reference:
    """Write the model to `path`; return a reference input/output pair."""
    return export_torch(make_model(), INPUT_SHAPE, path, SEED)
