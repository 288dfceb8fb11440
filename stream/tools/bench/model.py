"""Model suite: per-window latency, onnxruntime vs PyTorch, for each shipped model.

Owns wiring :func:`models.export.benchmark` to the registry. The onnxruntime side runs
the shipped ``model.onnx``; the PyTorch side is a :class:`models.rnn.SequenceClassifier`
built from the architecture on the model card (weights do not change the cost of a
forward pass). Needs torch (the ``train`` extra).
"""

from __future__ import annotations

from typing import Any

from rich.progress import Progress

from stream.config import Settings

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
THREADS = (1, 2)


def run(
    settings: Settings, seconds_per_case: float = 0.3, batches: tuple[int, ...] = BATCHES
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from models.export import benchmark
    from models.rnn import RnnConfig, SequenceClassifier
    from stream.scoring import registry

    results: list[dict[str, Any]] = []
    # The window models (RNNs); alert-scoring models run in shadow on alerts only.
    alert_scoring = registry.alert_scoring_names(settings)
    names = sorted({v.name for v in registry.list_models(settings)} - alert_scoring)
    with Progress(transient=True) as progress:
        task = progress.add_task("model latency", total=len(names))
        for name in names:
            path = registry.resolve(name, settings)
            card = registry.read_card(path)
            spec = card.inputs[0]
            architecture = card.metrics["architecture"]
            model = SequenceClassifier(RnnConfig(**architecture))
            for latency in benchmark(
                model, path / "model.onnx", spec.steps, len(spec.channels),
                batches=batches, threads=THREADS, seconds_per_case=seconds_per_case,
            ):  # fmt: skip
                results.append(
                    {
                        "model": card.ref,
                        "steps": spec.steps,
                        "runtime": latency.runtime,
                        "batch": latency.batch,
                        "threads": latency.threads,
                        "ms_per_window": round(latency.ms_per_window, 4),
                        "ms_per_call": round(latency.ms_per_call, 4),
                    }
                )
            progress.advance(task)
    return results, summarize(results)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """ONNX speed-up over PyTorch at batch 1, one thread, per model (and the smallest)."""

    def ms(model: str, runtime: str, batch: int, threads: int) -> float | None:
        for r in results:
            if (r["model"], r["runtime"], r["batch"], r["threads"]) == (
                model, runtime, batch, threads,
            ):  # fmt: skip
                return r["ms_per_window"]
        return None

    speedups: dict[str, float] = {}
    best_batch: dict[str, dict[str, Any]] = {}
    for model in sorted({r["model"] for r in results}):
        onnx, torch = ms(model, "onnxruntime", 1, 1), ms(model, "pytorch", 1, 1)
        if onnx and torch:
            speedups[model] = round(torch / onnx, 2)
        onnx_rows = [r for r in results if r["model"] == model and r["runtime"] == "onnxruntime"]
        if onnx_rows:
            fastest = min(onnx_rows, key=lambda r: r["ms_per_window"])
            best_batch[model] = {k: fastest[k] for k in ("batch", "threads", "ms_per_window")}
    return {
        "onnx_speedup_batch1": min(speedups.values()) if speedups else None,
        "onnx_speedup_batch1_by_model": speedups,
        "fastest_onnx_case": best_batch,
    }
