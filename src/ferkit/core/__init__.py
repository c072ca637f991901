"""The layer that training, evaluation, export and inference share: checkpoints, device set-up,
batched prediction with TTA and ensembles, the ONNX Runtime classifier, and the face detectors with their
eye-aligned crops (inference crops photos with them, training crops training photos).

It imports only from ``data`` and ``models`` (and ``errors``); everything above imports from it.
"""
