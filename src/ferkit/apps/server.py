"""HTTP API and web page (``ferkit serve``): FastAPI on uvicorn, one model loaded once.

- ``POST /v1/predict``: one image (multipart field ``file``) -> its faces, boxes and probabilities
- ``POST /v1/predict/batch``: several images (fields ``files``) -> faces, or an error, per image
- ``GET /v1/models``, ``GET /healthz``; ``GET /docs`` and ``/redoc`` (assets served by the app: fastapi-offline), ``/openapi.json``
- ``GET /``: the web page (photo upload, webcam, the Best Actor game), no asset from outside the server

Uploads are checked before the model sees them: a request-size cap (also for chunked bodies), a
per-image size cap, a pixel cap, and the format sniffed from the bytes (JPEG, PNG, WebP, BMP, GIF,
TIFF), never from the file name or content type. Bad input gets a 4xx JSON error
``{"error": {"code": ..., "message": ...}}``; inference runs in worker threads, off the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..inference import ImageError, Recognizer, decode_image
from ..inference.detect import DEFAULT_DETECTOR
from ..inference.images import WEB_FORMATS

MiB = 1 << 20
log = logging.getLogger("ferkit.server")
STATUS_OF_IMAGE_ERROR = {"empty": 400, "corrupt": 400, "not_an_image": 415, "too_many_pixels": 413}


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_image_bytes: int = 10 * MiB
    max_pixels: int = 40_000_000
    max_batch_files: int = 16
    max_request_bytes: int = 64 * MiB


class ApiError(Exception):
    """A client error: sent as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes, by its Content-Length or, for a
    chunked body, as soon as that many bytes have arrived."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await _error_response(413, "request_too_large", self._message())(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise ApiError(413, "request_too_large", self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"the request is over the limit of {self.limit / MiB:g} MiB"


def _upload_schema(field: str, many: bool) -> dict:
    item = {"type": "string", "format": "binary"}
    prop = {"type": "array", "items": item} if many else item
    schema = {"type": "object", "properties": {field: prop}, "required": [field]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _web_dir() -> Path:
    return Path(str(resources.files("ferkit") / "apps" / "web"))


def create_app(model: str | Path | None = None, detector: str = DEFAULT_DETECTOR, align: bool = True,
               limits: Limits = Limits(), workers: int = 1, threads: int | None = None) -> FastAPI:
    """The FastAPI app. ``model``: an ONNX file from ``ferkit export`` (default: the shipped one);
    ``workers``: images processed at once (each ONNX Runtime session uses ``threads``, default every core)."""
    recognizer = Recognizer(model=model, detector=detector, align=align, threads=threads)
    model_name = recognizer.classifier.path.stem
    limiter = anyio.CapacityLimiter(workers)
    app = FastAPIOffline(title="ferkit", version=recognizer.classifier.metadata.get("ferkit_version", "0"),
                         description="Facial emotion recognition: faces, boxes and seven emotion probabilities per image.")
    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)
    app.state.recognizer, app.state.limits = recognizer, limits

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return _error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error_response(422, "invalid_request", where)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error_response(500, "internal", "internal server error")

    async def read_upload(upload: Any, field: str) -> tuple[str, bytes]:
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "missing_file", f"send the image as a file in the multipart/form-data field {field!r}")
        data = await upload.read(limits.max_image_bytes + 1)
        if len(data) > limits.max_image_bytes:
            raise ApiError(413, "image_too_large", f"{upload.filename}: over the limit of "
                                                   f"{limits.max_image_bytes / MiB:g} MiB per image")
        return upload.filename or "upload", data

    def decode(name: str, data: bytes) -> np.ndarray:
        try:
            return decode_image(data, name, limits.max_pixels, WEB_FORMATS)
        except ImageError as exc:
            raise ApiError(STATUS_OF_IMAGE_ERROR.get(exc.code, 400), exc.code, str(exc)) from None
        except Exception as exc:  # whatever a decoder raises on hostile bytes is the upload's fault
            raise ApiError(400, "corrupt", f"{name}: unreadable image ({type(exc).__name__})") from None

    def result(rgb: np.ndarray, faces: list) -> dict:
        return {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "faces": [f.to_dict() for f in faces]}

    def predict_one(name: str, data: bytes, detect: bool) -> dict:
        rgb = decode(name, data)
        return result(rgb, app.state.recognizer.predict(rgb, detect=detect))

    def predict_many(items: list[tuple[str, bytes]], detect: bool) -> list[dict]:
        decoded: list[tuple[str, np.ndarray | ApiError]] = []
        for name, data in items:
            try:
                decoded.append((name, decode(name, data)))
            except ApiError as exc:
                decoded.append((name, exc))
        images = [im for _, im in decoded if isinstance(im, np.ndarray)]
        faces = iter(app.state.recognizer.predict_batch(images, detect=detect))
        return [{"filename": name, **(result(im, next(faces)) if isinstance(im, np.ndarray) else
                                      {"error": {"code": im.code, "message": im.message, "status": im.status}})}
                for name, im in decoded]

    @app.post("/v1/predict", openapi_extra=_upload_schema("file", many=False), tags=["predict"])
    async def predict(request: Request, detect: bool = True) -> dict:
        """Faces in one image: box [x, y, w, h] and landmarks in image pixels, the top emotion, its
        probability (``score``) and all seven probabilities. ``detect=false``: the image is one face."""
        form = await request.form(max_files=1, max_fields=4)
        name, data = await read_upload(form.get("file"), "file")
        start = time.perf_counter()
        out = await anyio.to_thread.run_sync(predict_one, name, data, detect, limiter=limiter)
        return {**out, "model": model_name, "ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.post("/v1/predict/batch", openapi_extra=_upload_schema("files", many=True), tags=["predict"])
    async def predict_batch(request: Request, detect: bool = True) -> dict:
        """Several images at once (at most ``max_batch_files``); an image that cannot be read gets an
        ``error`` entry in its place, the others their faces."""
        form = await request.form(max_files=limits.max_batch_files, max_fields=4)
        uploads = form.getlist("files")
        if not uploads:
            raise ApiError(400, "missing_file", "send the images as files in the multipart/form-data field 'files'")
        items = [await read_upload(u, "files") for u in uploads]
        start = time.perf_counter()
        results = await anyio.to_thread.run_sync(predict_many, items, detect, limiter=limiter)
        return {"results": results, "model": model_name, "ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.get("/v1/models", tags=["info"])
    async def models() -> dict:
        """The loaded model (the server has one) and how faces are found."""
        meta = recognizer.classifier.metadata
        return {"default": model_name, "models": [{
            "name": model_name, "architecture": meta.get("model"), "precision": meta.get("precision"),
            "classes": list(recognizer.classes), "input": "48x48 grey face", "detector": recognizer.detector.name,
            "align": recognizer.align, "limits": asdict(limits)}]}

    @app.get("/healthz", tags=["info"])
    async def healthz() -> dict:
        return {"status": "ok"}

    web_files = {p.name: p for p in _web_dir().iterdir() if p.is_file()}  # routes, not a mount at "/": a wrong
    # method on an API path stays a 405

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(web_files["index.html"])

    @app.get("/{asset}", include_in_schema=False)
    async def web_asset(asset: str) -> FileResponse:
        if asset not in web_files:
            raise ApiError(404, "not_found", f"/{asset}: no such page or file")
        return FileResponse(web_files[asset])

    return app


def serve(host: str = "127.0.0.1", port: int = 8000, **app_options: Any) -> None:
    """Run the server with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(**app_options), host=host, port=port, log_level="info")
