"""Scoring: the model registry, model inputs (the one train/serve contract),
explanations and the onnxruntime scorer. No torch: training lives in ``models/``.
"""
