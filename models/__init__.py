"""Offline training: datasets, the PyTorch RNNs, training, evaluation and ONNX export.

Needs the ``train`` extra (torch). This package imports ``stream`` (the model inputs,
registry and feature code in ``stream.scoring`` and ``stream.signal``, so a model learns on
exactly what the stream will feed it) and ``producers`` (simulated patients); the stream
never imports it. ``default/`` holds the small trained models a fresh checkout scores
with, read by ``stream.scoring.registry`` as files.
"""
