"""ONNX export with a parity gate, and the per-window latency benchmark (torch).

:func:`export_onnx` writes the graph with dynamic batch and time axes, then runs the
held-out windows through both PyTorch and onnxruntime: if any probability differs by
more than ``tolerance`` (1e-4) the export fails with :class:`ParityError` and the file
is removed, so a model that would score differently in the stream never reaches the
registry. :func:`benchmark` measures per-window latency, onnxruntime vs PyTorch, batch
1 and batched, 1 and 2 threads (``vitalstream bench model`` calls it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from models.rnn import STATE_OUTPUTS, SequenceClassifier, StatefulClassifier
from stream.scoring.registry import session_options

OPSET = 17
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported ONNX model does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    windows: int
    tolerance: float


def export_onnx(
    model: SequenceClassifier,
    path: Path,
    windows: np.ndarray,
    input_name: str,
    output_name: str = "probabilities",
    tolerance: float = PARITY_TOLERANCE,
) -> Parity:
    """Export ``model`` to ``path`` and check parity on ``windows`` (normalized inputs)."""
    model.eval()
    example = torch.from_numpy(np.ascontiguousarray(windows[:2], dtype=np.float32))
    path = Path(path)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "batch", 1: "time"}, output_name: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    try:
        return check_parity(model, path, windows, tolerance)
    except ParityError:
        path.unlink(missing_ok=True)
        raise


def check_parity(
    model: SequenceClassifier, path: Path, windows: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> Parity:
    """Max |onnx - torch| over ``windows``; raises :class:`ParityError` above ``tolerance``."""
    session = ort.InferenceSession(
        str(path), session_options(1), providers=["CPUExecutionProvider"]
    )
    x = np.ascontiguousarray(windows, dtype=np.float32)
    input_name = session.get_inputs()[0].name
    onnx_out = np.concatenate(
        [session.run(None, {input_name: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )
    model.eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x)).numpy()
    diff = float(np.max(np.abs(onnx_out - torch_out))) if len(x) else 0.0
    if not diff <= tolerance:
        raise ParityError(
            f"ONNX export differs from PyTorch by {diff:.2e} > {tolerance:.0e} "
            f"on {len(x)} held-out windows"
        )
    return Parity(max_abs_diff=diff, windows=len(x), tolerance=tolerance)


@dataclass(frozen=True)
class Latency:
    runtime: str
    batch: int
    threads: int
    ms_per_window: float
    ms_per_call: float


def _time_per_call(call: object, repeats: int) -> float:
    call()  # type: ignore[operator]  # warm-up: first runs allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeats):
        call()  # type: ignore[operator]
    return (time.perf_counter() - start) / repeats * 1000


def benchmark(
    model: SequenceClassifier | StatefulClassifier,
    onnx_path: Path,
    steps: int,
    channels: int,
    batches: tuple[int, ...] = (1, 32),
    threads: tuple[int, ...] = (1, 2),
    seconds_per_case: float = 0.5,
) -> list[Latency]:
    """Per-window latency of both runtimes for every (batch, threads) case."""
    rng = np.random.default_rng(0)
    results: list[Latency] = []
    model.eval()
    previous_threads = torch.get_num_threads()
    try:
        for n_threads in threads:
            session = ort.InferenceSession(
                str(onnx_path), session_options(n_threads), providers=["CPUExecutionProvider"]
            )
            name, *states = session.get_inputs()
            torch.set_num_threads(n_threads)
            for batch in batches:
                x = rng.standard_normal((batch, steps, channels)).astype(np.float32)
                tensor = torch.from_numpy(x)
                # A streaming graph's state inputs (batch first): zeros, a cold start.
                feeds = {name.name: x}
                feeds.update({s.name: np.zeros((batch, *s.shape[1:]), np.float32) for s in states})
                cases = {
                    "onnxruntime": lambda f=feeds, s=session: s.run(None, f),
                    "pytorch": lambda t=tensor: _torch_call(model, t),
                }
                for runtime, call in cases.items():
                    probe = _time_per_call(call, 3)
                    repeats = max(5, int(seconds_per_case * 1000 / max(probe, 1e-3)))
                    per_call = _time_per_call(call, repeats)
                    results.append(Latency(runtime, batch, n_threads, per_call / batch, per_call))
    finally:
        torch.set_num_threads(previous_threads)
    return results


def _torch_call(
    model: SequenceClassifier | StatefulClassifier, x: torch.Tensor
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        if isinstance(model, StatefulClassifier):
            return model(x, *model.zero_state(len(x)))
        return model(x)


# -- streaming models: state in, state out -----------------------------------------------


def export_streaming(
    model: StatefulClassifier,
    path: Path,
    sequences: np.ndarray,
    input_name: str,
    hop_steps: int,
    output_name: str = "probabilities",
    tolerance: float = PARITY_TOLERANCE,
) -> Parity:
    """Export a :class:`StatefulClassifier` with its state as graph inputs and outputs
    (``initial_h`` → ``Y_h``, each conv layer's ``context_k`` → ``context_k_out``, batch
    first), then check parity step-wise: ``sequences`` (normalized, ``[n, time, channels]``)
    are fed to onnxruntime one hop of ``hop_steps`` at a time, carrying the state it
    returns, and every hop's probabilities are compared with torch run over each whole
    sequence at once. A failed check removes the file (:class:`ParityError`)."""
    model.eval()
    states = list(model.config.state_shapes())
    outputs = [output_name, *(STATE_OUTPUTS[s] for s in states)]
    x = np.ascontiguousarray(sequences, dtype=np.float32)
    example = (torch.from_numpy(x[:2, :hop_steps]), *model.zero_state(2))
    path = Path(path)
    dynamic = {input_name: {0: "batch", 1: "time"}}
    dynamic.update({name: {0: "batch"} for name in [*states, *outputs]})
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=[input_name, *states],
        output_names=outputs,
        dynamic_axes=dynamic,
        opset_version=OPSET,
        dynamo=False,
    )
    try:
        return check_streaming_parity(model, path, x, hop_steps, tolerance)
    except ParityError:
        path.unlink(missing_ok=True)
        raise


def check_streaming_parity(
    model: StatefulClassifier,
    path: Path,
    sequences: np.ndarray,
    hop_steps: int,
    tolerance: float = PARITY_TOLERANCE,
) -> Parity:
    """Max |onnx fed hop by hop - torch fed whole| over every hop of ``sequences``."""
    session = ort.InferenceSession(
        str(path), session_options(1), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    x = np.ascontiguousarray(sequences, dtype=np.float32)
    hops = x.shape[1] // hop_steps
    state = [s.numpy() for s in model.zero_state(len(x))]
    onnx_out = []
    for k in range(hops):
        feeds = dict(zip(names, [x[:, k * hop_steps : (k + 1) * hop_steps], *state], strict=True))
        probabilities, *state = session.run(outputs, feeds)
        onnx_out.append(probabilities)
    with torch.no_grad():
        logits, _, _ = model.step_logits(torch.from_numpy(x), *model.zero_state(len(x)))
    per_step = model.config.samples_per_step
    torch_out = torch.sigmoid(logits[:, hop_steps // per_step - 1 :: hop_steps // per_step])
    diff = float(np.max(np.abs(np.stack(onnx_out, axis=1) - torch_out.numpy()))) if hops else 0.0
    if not diff <= tolerance:
        raise ParityError(
            f"ONNX export fed hop by hop differs from PyTorch by {diff:.2e} > {tolerance:.0e} "
            f"on {len(x)} held-out sequences of {hops} hops"
        )
    return Parity(max_abs_diff=diff, windows=len(x) * hops, tolerance=tolerance)
