"""Keras' probabilities for ``ferkit import-keras``'s check, run as a script by a Python that has TensorFlow
(ferkit itself never imports it); imports nothing from ferkit:

    python keras_reference.py MODEL.h5 ARCH.json|- FACES.npy OUT.npy MEAN STD

loads the full model (``-``) or the architecture with the weights, feeds ``(faces / 255 - MEAN) / STD`` (faces in
0..255, grey (N, H, W), repeated to the model's channels, or (N, H, W, C)) and saves ``model.predict``'s output to
OUT.npy.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import numpy as np
    from tensorflow import keras

    model_path, json_path, faces_path, out_path, mean, std = argv
    if json_path == "-":
        model = keras.models.load_model(model_path, compile=False)
    else:
        with open(json_path) as handle:
            model = keras.models.model_from_json(handle.read())
        model.load_weights(model_path)
    faces = np.load(faces_path).astype("float32")
    if faces.ndim == 3:
        faces = np.repeat(faces[..., None], model.input_shape[-1], axis=-1)
    np.save(out_path, model.predict((faces / 255.0 - float(mean)) / float(std), verbose=0))


if __name__ == "__main__":
    main(sys.argv[1:])
