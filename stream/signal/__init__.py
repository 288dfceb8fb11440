"""Signals: window types, per-device buffers, features and their compiled kernels.

Pure numpy/scipy/numba: no Faust, Kafka or InfluxDB import. The same code serves the
worker, ``vitalstream analyze`` and model training. One concern per module:

- :mod:`~stream.signal.window`: :class:`~stream.signal.window.SignalWindow`, the analysis
  result and :data:`~stream.signal.window.FEATURE_NAMES`;
- :mod:`~stream.signal.buffers`: per-device ring buffers that cut the windows;
- :mod:`~stream.signal.filters`: band-pass filtering and gap filling;
- :mod:`~stream.signal.beats`: R-peak (Pan–Tompkins) and pulse (Elgendi) detection;
- :mod:`~stream.signal.rhythm`: heart rate and RR-interval features;
- :mod:`~stream.signal.respiration`: respiration rate (device value or ECG-derived);
- :mod:`~stream.signal.activity`: accelerometer features;
- :mod:`~stream.signal.quality`: ECG and PPG signal-quality indices and fault flags;
- :mod:`~stream.signal.trends`: slopes of the vitals' history;
- :mod:`~stream.signal.features`: all of them over a batch of windows (the feature vector);
- :mod:`~stream.signal.kernels`: their compiled (numba) inner loops.
"""
