#!/usr/bin/env bash
# Vendor ONNX Runtime Web (the `onnxruntime-web` npm package, MIT) into the ferkit package, for the web
# page's on-device mode: the WebAssembly build only (no WebGL/WebGPU), three files from dist/:
#   ort.wasm.min.js                  the API (a classic script, global `ort`)         ~54 KB
#   ort-wasm-simd-threaded.mjs       the Emscripten glue it imports                  ~25 KB
#   ort-wasm-simd-threaded.wasm      the runtime (SIMD; run with numThreads=1)     ~14.8 MB (3.8 MB gzipped)
# `npm pack` checks the tarball against the registry's integrity hash; the one pinned here is checked
# again. Re-run to update (change VERSION and INTEGRITY), then commit src/ferkit/apps/web/ort/.
set -euo pipefail
VERSION=1.31.1
INTEGRITY="sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
FILES=(ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)
dest="$(cd "$(dirname "$0")/.." && pwd)/src/ferkit/apps/web/ort"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-web@$VERSION" >/dev/null)
tarball="$work/onnxruntime-web-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "integrity mismatch: $got" >&2; exit 1; }
tar -xzf "$tarball" -C "$work"
rm -rf "$dest" && mkdir -p "$dest"
for f in "${FILES[@]}"; do cp "$work/package/dist/$f" "$dest/"; done
{
  echo "onnxruntime-web $VERSION (npm, $INTEGRITY), MIT License, Copyright (c) Microsoft Corporation."
  echo "Copied by tools/vendor_ort_web.sh; sha256 of each file:"
  (cd "$dest" && sha256sum "${FILES[@]}")
} > "$dest/VERSION.txt"
du -b "$dest"/*
