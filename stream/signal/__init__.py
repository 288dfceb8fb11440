"""Signals: window types, per-device buffers, features and their compiled kernels.

Pure numpy/scipy/numba: no Faust, Kafka or InfluxDB import. The same code serves the
worker, ``vitalstream analyze`` and model training.
"""
