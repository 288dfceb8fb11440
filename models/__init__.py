"""Offline training, evaluation, ONNX export and the model registry.

Only ``stream.scoring.registry`` is imported by the stream; everything needing torch lives
behind the ``train`` extra.
"""
