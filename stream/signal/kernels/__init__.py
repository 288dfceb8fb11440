"""Compiled inner loops of the per-window signal analysis (numba), no Faust.

The modules of :mod:`stream.signal` own the algorithms and their meaning; these own their
sample- and candidate-level loops, compiled with numba. A 10 s window is a few thousand
samples and a few dozen beat candidates: as numpy calls, the per-call overhead (some
hundred calls a window) was most of the worker's time; compiled, a window's beats and
quality indices cost tens of microseconds. Each kernel is the numpy code it replaced,
step for step (``scipy.signal.find_peaks``'s plateau and distance rules included), so
features are unchanged up to floating-point summation order.

- :mod:`~stream.signal.kernels.detectors`: peak primitives and the beat and pulse detectors;
- :mod:`~stream.signal.kernels.stats`: per-window statistics (quality indices, activity,
  trends);
- :mod:`~stream.signal.kernels.beat_series`: beat-indexed series put on a regular grid (EDR,
  the model's held RR intervals);
- :mod:`~stream.signal.kernels.ppg_stream`: the causal Elgendi pulse loop of
  :mod:`stream.signal.pulse_stream`, many devices' new samples per call.
- :mod:`~stream.signal.kernels.stream_common`: what the causal stream loops (``ecg_stream``,
  ``ppg_stream``) share: the band-pass step, gap bookkeeping, output growth.

Kernels are compiled on first use and cached beside their file (``cache=True``); a worker
compiles them before it consumes (:func:`stream.signal.features.warm_up`). numba's cache
notices a change to a kernel's own file only, not to a kernel it calls in another file:
a kernel and the kernels it calls share one module (but for ``stream_common``, whose
change must be followed by touching ``ecg_stream`` and ``ppg_stream``).
"""
