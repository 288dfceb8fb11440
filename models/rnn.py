"""The recurrent classifiers (PyTorch, ``train`` extra only).

:class:`SequenceClassifier` reads ``[batch, time, channels]`` and returns one probability
per class (independent sigmoids: a window can show AF *and* ventricular beats). An
optional strided Conv1d front-end shortens long ECG sequences before the GRU/LSTM: a
GRU's cost is linear in steps, and 640 ECG samples become 80 steps with stride 8, which
keeps a window near 0.3 ms in onnxruntime on one core. The sigmoid is part of the graph,
so the exported ONNX model outputs probabilities and the stream needs no torch code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class RnnConfig:
    channels: int
    classes: int
    cell: Literal["gru", "lstm"] = "gru"
    hidden: int = 32
    layers: int = 1
    conv_channels: int = 16  # 0 disables the front-end (short feature sequences need none)
    conv_kernel: int = 7
    conv_stride: int = 4
    conv_layers: int = 1  # each layer divides the sequence by conv_stride
    dropout: float = 0.1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class SequenceClassifier(nn.Module):
    def __init__(self, config: RnnConfig) -> None:
        super().__init__()
        self.config = config
        front: list[nn.Module] = []
        width = config.channels
        for _ in range(config.conv_layers if config.conv_channels else 0):
            front += [
                nn.Conv1d(
                    width,
                    config.conv_channels,
                    config.conv_kernel,
                    stride=config.conv_stride,
                    padding=config.conv_kernel // 2,
                ),
                nn.BatchNorm1d(config.conv_channels),
                nn.ReLU(),
            ]
            width = config.conv_channels
        self.front = nn.Sequential(*front)
        rnn_type = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn_type(width, config.hidden, num_layers=config.layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(2 * config.hidden, config.classes)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.front):
            x = self.front(x.transpose(1, 2)).transpose(1, 2)
        sequence, _ = self.rnn(x)
        # Last state for "how it ends", mean over time for "what happened anywhere in the
        # window" (a single ectopic beat early on must not be forgotten).
        pooled = torch.cat([sequence[:, -1], sequence.mean(dim=1)], dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
