"""The layer that training, evaluation, export and inference share: checkpoints, device set-up,
batched prediction with TTA and ensembles, and the ONNX Runtime classifier.

It imports only from ``data`` and ``models`` (and ``errors``); everything above imports from it.
"""
