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


# -- stateful (streaming) classifiers ----------------------------------------------------


@dataclass(frozen=True)
class StatefulConfig:
    """A causal network that carries its state between hops (see :class:`StatefulClassifier`).

    ``conv_kernel - conv_stride`` input steps of context per conv layer are the whole
    memory a strided causal convolution needs: with that many previous steps prepended,
    ``n`` new steps (a multiple of ``conv_stride``) give exactly ``n / conv_stride`` outputs,
    the ones the whole sequence would have given there.
    """

    channels: int
    classes: int
    hidden: int = 32
    conv_channels: int = 16  # 0: no front-end (a vitals trend is short already)
    conv_kernel: int = 8
    conv_stride: int = 4
    conv_layers: int = 2  # 64 Hz ECG: 16 input samples per GRU step, 4 steps a second
    dropout: float = 0.1

    @property
    def context(self) -> int:
        return self.conv_kernel - self.conv_stride

    @property
    def samples_per_step(self) -> int:
        """Input samples per GRU step: the multiple a fed hop's length must be."""
        return self.conv_stride ** (self.conv_layers if self.conv_channels else 0)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-device state tensors (without the batch axis), graph input name → shape."""
        shapes: dict[str, tuple[int, ...]] = {"initial_h": (1, self.hidden)}
        width = self.channels
        for layer in range(self.conv_layers if self.conv_channels else 0):
            shapes[f"context_{layer + 1}"] = (self.context, width)
            width = self.conv_channels
        return shapes

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# The graph output each state input comes back as (ONNX's GRU calls its last state Y_h).
STATE_OUTPUTS = {"initial_h": "Y_h", "context_1": "context_1_out", "context_2": "context_2_out"}


class StatefulClassifier(nn.Module):
    """Causal conv front-end (optional) + GRU + head on the last state, fed hop by hop.

    ``forward(x, initial_h, *contexts)`` takes the new inputs ``[batch, time, channels]``
    (already normalized; ``time`` a multiple of :attr:`StatefulConfig.samples_per_step`)
    and the device's state batch-first (``initial_h [batch, 1, hidden]``, each conv
    layer's ``[batch, context, width]``), and returns the probabilities after the last
    step and the new state. Feeding a sequence in pieces gives what feeding it whole
    gives: training (truncated backpropagation through time), the ONNX graph and the
    stream all run this one function, with zero state at a cold start.

    >>> torch.manual_seed(0) is not None
    True
    >>> model = StatefulClassifier(StatefulConfig(channels=3, classes=2)).eval()
    >>> x = torch.randn(2, 128, 3)
    >>> whole, *_ = model(x, *model.zero_state(2))
    >>> _, *state = model(x[:, :64], *model.zero_state(2))
    >>> halves, *_ = model(x[:, 64:], *state)
    >>> bool(torch.allclose(whole, halves, atol=1e-5))
    True
    """

    def __init__(self, config: StatefulConfig) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList()
        width = config.channels
        for _ in range(config.conv_layers if config.conv_channels else 0):
            self.convs.append(
                nn.Sequential(
                    nn.Conv1d(width, config.conv_channels, config.conv_kernel, config.conv_stride),
                    nn.BatchNorm1d(config.conv_channels),
                    nn.ReLU(),
                )
            )
            width = config.conv_channels
        self.rnn = nn.GRU(width, config.hidden, batch_first=True)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.hidden, config.classes)
        )

    def zero_state(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, *shape) for shape in self.config.state_shapes().values()]

    def step_logits(
        self, x: torch.Tensor, initial_h: torch.Tensor, *contexts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Logits after every GRU step ``[batch, steps, classes]``, the last state, contexts."""
        new_contexts = []
        context_len = self.config.context
        for conv, context in zip(self.convs, contexts, strict=True):
            joined = torch.cat([context, x], dim=1)
            new_contexts.append(joined[:, joined.shape[1] - context_len :])
            x = conv(joined.transpose(1, 2)).transpose(1, 2)
        sequence, h = self.rnn(x, initial_h.transpose(0, 1).contiguous())
        return self.head(sequence), h.transpose(0, 1), new_contexts

    def forward(
        self, x: torch.Tensor, initial_h: torch.Tensor, *contexts: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        logits, h, new_contexts = self.step_logits(x, initial_h, *contexts)
        return (torch.sigmoid(logits[:, -1]), h, *new_contexts)
