"""Offline training, evaluation, ONNX export and the model registry.

Only ``models.registry`` is imported by the stream; everything needing torch lives
behind the ``train`` extra.
"""
