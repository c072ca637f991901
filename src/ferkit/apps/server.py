"""HTTP API and web page (``ferkit serve``): FastAPI on uvicorn, one model loaded once.

- ``POST /v1/predict``: one image (multipart field ``file``) -> its faces, boxes and probabilities
- ``POST /v1/predict/batch``: several images (fields ``files``) -> faces, or an error, per image
- ``GET /v1/models``, ``GET /healthz``; ``GET /docs`` and ``/redoc`` (assets served by the app: fastapi-offline), ``/openapi.json``
- ``GET /``: the web page (photo upload, webcam, the Best Actor game), no asset from outside the server

Uploads are checked before the model sees them: a request-size cap (also for chunked bodies), time
limits for a request's head and body to arrive, a per-image size cap, a pixel cap per image and per request, a scan cap
for progressive JPEGs, a time limit per decode, and the format sniffed from the bytes (JPEG, PNG,
WebP, BMP, GIF, TIFF), never from the file name or content type. Bad input gets a 4xx JSON error
``{"error": {"code": ..., "message": ...}}``; inference runs in worker threads, off the event loop,
one image at a time, and stops when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.message import Message
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import h11
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..core.runtime import file_sha256
from ..errors import ConfigError
from ..inference import ImageError, Recognizer, decode_image
from ..inference.detect import DEFAULT_DETECTOR
from ..inference.images import MAX_SCANS, WEB_FORMATS, image_pixels
from .tls import Certificate, ensure_certificate, given_certificate, lan_addresses

MiB = 1 << 20
log = logging.getLogger("ferkit.server")
STATUS_OF_IMAGE_ERROR = {"empty": 400, "corrupt": 400, "not_an_image": 415, "too_many_pixels": 413,
                         "too_many_scans": 413, "too_slow": 413}


@dataclass(frozen=True)
class Limits:
    """What one request may carry, and how long it may take."""

    max_image_bytes: int = 10 * MiB
    max_pixels: int = 40_000_000  # per image
    max_request_pixels: int = 200_000_000  # all the images of a request together (16 12-megapixel photos fit)
    max_jpeg_scans: int = MAX_SCANS
    max_decode_s: float = 5.0  # per image; checked between reads of its bytes (at most 64 KiB each)
    max_decode_reads: int = 100_000  # per image (legitimate files need at most a few thousand)
    max_batch_files: int = 16
    max_request_bytes: int = 64 * MiB
    body_idle_s: float = 15.0  # most seconds without a byte of the request body
    body_s: float = 120.0  # most seconds for the whole request body
    head_s: float = 20.0  # most seconds for a request's head, from the connection's start or its last answer


class ApiError(Exception):
    """A client error: sent as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class BodyGuard:
    """ASGI middleware for request bodies: 413 over ``max_request_bytes`` (by Content-Length or, for
    a chunked body, as soon as that many bytes have arrived); 408 when no byte arrives for
    ``body_idle_s`` or the body is not complete within ``body_s``. Both answers close the connection,
    so that the rest of the body is neither waited for nor read."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limits.max_request_bytes:
            response = _error_response(413, "request_too_large", self._too_large())
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        received, complete, refused = 0, False, False
        deadline = anyio.current_time() + self.limits.body_s

        async def closing_send(message: dict) -> None:
            if message["type"] == "http.response.start" and refused:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        async def guarded_receive() -> dict:
            nonlocal received, complete, refused
            if complete:  # later calls only wait for the client to disconnect
                return await receive()
            with anyio.move_on_after(min(self.limits.body_idle_s, deadline - anyio.current_time())) as wait:
                message = await receive()
            if wait.cancelled_caught:
                refused = True
                raise ApiError(408, "request_timeout", f"the request body did not arrive in time (a byte at least "
                               f"every {self.limits.body_idle_s:g} s, all of it within {self.limits.body_s:g} s)")
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.limits.max_request_bytes:
                refused = True
                raise ApiError(413, "request_too_large", self._too_large())
            return message

        await self.app(scope, guarded_receive, closing_send)

    def _too_large(self) -> str:
        return f"the request is over the limit of {self.limits.max_request_bytes / MiB:g} MiB"


class HeadTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol that closes a connection which has not sent a whole request head (request
    line and headers) ``head_s`` after it opened or after its last answer: uvicorn times neither, so a
    client sending nothing, or its headers a byte at a time, kept its connection for ever."""

    def __init__(self, *args: Any, head_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_s = head_s
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._time_head()

    def handle_events(self) -> None:
        super().handle_events()
        self._time_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._time_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
        super().connection_lost(exc)

    def _time_head(self) -> None:
        """Run the timer while the client owes a request head (h11's IDLE), from the moment it began
        to owe it (bytes arriving do not restart it); stop it once the head is in."""
        if self.conn.their_state is not h11.IDLE:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None
        elif self.head_timer is None and not self.transport.is_closing():
            self.head_timer = self.loop.call_later(self.head_s, self._head_timeout)

    def _head_timeout(self) -> None:
        self.head_timer = None
        if self.conn.their_state is h11.IDLE:
            self.transport.close()


def uvicorn_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` (from :func:`create_app`): its ``head_s`` limit on request
    heads (:class:`HeadTimeoutH11`); ``options`` go to ``uvicorn.Config``."""
    http = functools.partial(HeadTimeoutH11, head_s=app.state.limits.head_s)
    return uvicorn.Config(app, host=host, port=port, http=http, **options)  # type: ignore[arg-type]


class _FormParser(MultiPartParser):
    """Starlette's multipart parser that also takes a part named only by ``filename*=`` (RFC 5987,
    which RFC 7578 forbids but some clients send) as the file it is. A part without a Content-Disposition is
    left to Starlette, which refuses it (400)."""

    def on_headers_finished(self) -> None:
        part, disposition = self._current_part, self._current_part.content_disposition
        if disposition is not None and b"filename" not in parse_options_header(disposition)[1]:
            header = Message()
            header["content-disposition"] = disposition.decode("latin-1")
            if (name := header.get_filename()) is not None:
                quoted = name.replace("\\", "\\\\").replace('"', '\\"')
                part.content_disposition = disposition + f'; filename="{quoted}"'.encode()
        super().on_headers_finished()


async def _read_form(request: Request, max_files: int) -> FormData:
    """The request's multipart form (any other body: an empty form)."""
    if parse_options_header(request.headers.get("content-type"))[0] != b"multipart/form-data":
        return FormData()
    try:
        async with contextlib.aclosing(request.stream()) as stream:
            return await _FormParser(request.headers, stream, max_files=max_files, max_fields=4).parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_request", exc.message) from None


async def _while_connected(request: Request, limiter: anyio.CapacityLimiter, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, given up when the client disconnects (raises
    :class:`ClientDisconnect`): a call still waiting for ``limiter`` never starts, a running one
    stops at its next ``anyio.from_thread.check_cancelled()``."""
    outcome: dict[str, Any] = {}

    async def work() -> None:
        try:
            outcome["result"] = await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
        except Exception as exc:  # raised below as itself, not in the task group's ExceptionGroup
            outcome["error"] = exc
        group.cancel_scope.cancel()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(work)
        group.start_soon(watch)
    if "error" in outcome:
        raise outcome["error"]
    if "result" not in outcome:
        raise ClientDisconnect()
    return outcome["result"]


def _upload_schema(field: str, many: bool) -> dict:
    item = {"type": "string", "format": "binary"}
    prop = {"type": "array", "items": item} if many else item
    schema = {"type": "object", "properties": {field: prop}, "required": [field]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _web_dir() -> Path:
    return Path(str(resources.files("ferkit") / "apps" / "web"))


def create_app(model: str | Path | None = None, detector: str = DEFAULT_DETECTOR, align: bool = True,
               limits: Limits = Limits(), concurrency: int = 1, threads: int | None = None, tta: str = "none") -> FastAPI:
    """The FastAPI app. ``model``: a shipped model's name or an ONNX file from ``ferkit export`` (default: the
    package's default), or several, comma-separated, for an ensemble (the on-device mode runs every member too);
    ``concurrency``: images processed at once (each ONNX Runtime session uses ``threads``, default every core);
    ``tta``: the :class:`Recognizer`'s test-time augmentation of the API's answers ("none", "flip", "tencrop")."""
    recognizer = Recognizer(model=model, detector=detector, align=align, threads=threads, tta=tta)
    model_name = recognizer.classifier.name
    limiter = anyio.CapacityLimiter(concurrency)
    app = FastAPIOffline(title="ferkit", version=recognizer.classifier.metadata.get("ferkit_version", "0"),
                         description="Facial emotion recognition: the faces in an image, their boxes and one probability "
                                     "per class (seven for FER2013 models, eight for FER+).")
    app.add_middleware(BodyGuard, limits=limits)
    app.state.recognizer, app.state.limits = recognizer, limits

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        log.info("%s %s: the client went away before the answer; its work was stopped", request.method, request.url.path)
        return _error_response(499, "client_disconnected", "the client closed the connection")  # read by no one

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

    def checker(name: str) -> Callable[[], None]:
        """A check for one decode: raises once the client has gone (the task waiting for this thread
        is cancelled), or the decode is over ``max_decode_s`` or ``max_decode_reads`` (Pillow parses
        a JPEG's segments in Python, a few reads each: 10 MB of empty ones took 7 s)."""
        deadline, reads = time.monotonic() + limits.max_decode_s, itertools.count(1)

        def check() -> None:
            anyio.from_thread.check_cancelled()
            if time.monotonic() > deadline:
                raise ImageError(name, f"took over {limits.max_decode_s:g} s to decode", "too_slow")
            if next(reads) > limits.max_decode_reads:
                raise ImageError(name, f"needs over {limits.max_decode_reads:,} reads of its bytes to decode "
                                       "(a flood of tiny segments)", "too_slow")
        return check

    def decode(name: str, data: bytes, pixels_left: int) -> np.ndarray:
        check = checker(name)
        try:
            if (pixels := image_pixels(data, check)) > pixels_left:
                raise ImageError(name, f"{pixels:,} pixels is over what is left of the request's budget of "
                                       f"{limits.max_request_pixels:,}", "too_many_pixels")
            return decode_image(data, name, limits.max_pixels, WEB_FORMATS, limits.max_jpeg_scans, check)
        except ImageError as exc:
            raise ApiError(STATUS_OF_IMAGE_ERROR.get(exc.code, 400), exc.code, str(exc)) from None
        except Exception as exc:  # whatever a decoder raises on hostile bytes is the upload's fault
            raise ApiError(400, "corrupt", f"{name}: unreadable image ({type(exc).__name__})") from None

    def result(rgb: np.ndarray, faces: list) -> dict:
        return {"width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "faces": [f.to_dict() for f in faces]}

    def predict_one(name: str, data: bytes, detect: bool) -> dict:
        rgb = decode(name, data, limits.max_request_pixels)
        return result(rgb, app.state.recognizer.predict(rgb, detect=detect))

    def predict_many(items: list[tuple[str, bytes]], detect: bool) -> list[dict]:
        """One image at a time (decoded, searched, let go), so that memory holds one image at most;
        an image past the request's pixel budget gets an error entry."""
        out, left = [], limits.max_request_pixels
        for name, data in items:
            try:
                rgb = decode(name, data, left)
                left -= rgb.shape[0] * rgb.shape[1]
                out.append({"filename": name, **result(rgb, app.state.recognizer.predict(rgb, detect=detect))})
            except ApiError as exc:
                out.append({"filename": name, "error": {"code": exc.code, "message": exc.message, "status": exc.status}})
        return out

    @app.post("/v1/predict", openapi_extra=_upload_schema("file", many=False), tags=["predict"])
    async def predict(request: Request, detect: bool = True) -> dict:
        """Faces in one image: box [x, y, w, h] and landmarks in image pixels, the top emotion, its
        probability (``score``) and one probability per class (seven for FER2013 models, eight for FER+).
        ``detect=false``: the image is one face."""
        form = await _read_form(request, max_files=1)
        try:
            name, data = await read_upload(form.get("file"), "file")
        finally:
            await form.close()
        start = time.perf_counter()
        out = await _while_connected(request, limiter, predict_one, name, data, detect)
        return {**out, "model": model_name, "ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.post("/v1/predict/batch", openapi_extra=_upload_schema("files", many=True), tags=["predict"])
    async def predict_batch(request: Request, detect: bool = True) -> dict:
        """Several images at once (at most ``max_batch_files``); an image that cannot be read gets an
        ``error`` entry in its place, the others their faces."""
        form = await _read_form(request, max_files=limits.max_batch_files)
        try:
            uploads = form.getlist("files")
            if not uploads:
                raise ApiError(400, "missing_file", "send the images as files in the multipart/form-data field 'files'")
            items = [await read_upload(u, "files") for u in uploads]
        finally:
            await form.close()
        start = time.perf_counter()
        results = await _while_connected(request, limiter, predict_many, items, detect)
        return {"results": results, "model": model_name, "ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.get("/v1/models", tags=["info"])
    async def models() -> dict:
        """The loaded model (the server has one: a network, or an ensemble whose members' probabilities are
        averaged) and how faces are found."""
        size = recognizer.classifier.input_size
        members = [{"name": m.name, "architecture": m.metadata.get("model"), "precision": m.metadata.get("precision"),
                    "temperature": float(m.metadata.get("temperature", 1.0))} for m in recognizer.classifier.members]
        first = members[0] if len(members) == 1 else {
            "name": model_name, **{k: "+".join(str(m[k]) for m in members) for k in ("architecture", "precision")}}
        return {"default": model_name, "models": [{
            **first, "members": members, "classes": list(recognizer.classes),
            "input": f"{size}x{size} grey face", "detector": recognizer.detector.name,
            "align": recognizer.align, "tta": recognizer.tta, "limits": asdict(limits)}]}

    @app.get("/healthz", tags=["info"])
    async def healthz() -> dict:
        return {"status": "ok"}

    # The page's files, the vendored runtime and the models for the on-device mode (the classifier's members and
    # BlazeFace, whatever detector the server uses): routes, not a mount at "/", so that a wrong method on an API
    # path stays a 405. Model URLs carry the file's hash, so that the service worker may keep them until
    # ondevice.json no longer names them.
    web_files = {p.relative_to(_web_dir()).as_posix(): p for p in _web_dir().rglob("*") if p.is_file()}
    detector_file = Path(str(resources.files("ferkit") / "weights" / "face_detection_back.onnx"))
    model_files = {f"{p.stem}.{file_sha256(p)}.onnx": p
                   for p in [m.path for m in recognizer.classifier.members] + [detector_file]}
    urls = {p: f"models/{name}" for name, p in model_files.items()}
    on_device_info = {
        "runtime": "ort/", "align": recognizer.align, "tta": recognizer.tta,
        "classifier": {"urls": [urls[m.path] for m in recognizer.classifier.members], "name": model_name,
                       "classes": list(recognizer.classes), "input_size": recognizer.classifier.input_size},
        "detector": {"url": urls[detector_file], "name": "blazeface"}}

    def send(path: Path, cache: str = "no-cache") -> FileResponse:
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix), headers={"Cache-Control": cache})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return send(web_files["index.html"])

    @app.get("/ondevice.json", include_in_schema=False)
    async def ondevice() -> JSONResponse:
        """What the page needs to run on the device: the runtime's folder, the models' URLs, the classes."""
        return JSONResponse(on_device_info, headers={"Cache-Control": "no-cache"})

    @app.get("/models/{name}", include_in_schema=False)
    async def model_file(name: str) -> FileResponse:
        if name not in model_files:
            raise ApiError(404, "not_found", f"/models/{name}: no such model")
        return send(model_files[name], "public, max-age=31536000, immutable")

    api_paths = {r.path for r in app.routes if "GET" not in (getattr(r, "methods", None) or {"GET"})}

    @app.get("/{asset:path}", include_in_schema=False)
    async def web_asset(asset: str) -> FileResponse:
        if f"/{asset}" in api_paths:  # GET on a POST-only API path: a wrong method, not a missing page
            raise HTTPException(405, "Method Not Allowed")
        if asset not in web_files:
            raise ApiError(404, "not_found", f"/{asset}: no such page or file")
        return send(web_files[asset])

    return app


MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
               ".webmanifest": "application/manifest+json", ".onnx": "application/octet-stream"}


def startup_message(host: str, port: int, cert: Certificate | None, lan: list[str]) -> str:
    """Where to open the page (on this machine, and on a phone on the same network) and, over HTTPS,
    the certificate's file and SHA-256 fingerprint."""
    scheme = "https" if cert else "http"
    local = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1", "localhost", "::1") else host
    lines = [f"ferkit serve: open {scheme}://{local}:{port}/ on this machine"]
    remote = lan if host in ("0.0.0.0", "::") else [] if local == "localhost" else [host]
    if remote:
        lines.append("  on a phone on the same network: " + ", ".join(f"{scheme}://{a}:{port}/" for a in remote))
    elif local == "localhost":
        lines.append("  only this machine can reach it: --host 0.0.0.0 listens on the network too (for a phone)")
    if cert:
        lines.append(f"  certificate {cert.certfile} ({cert.origin}), SHA-256 fingerprint {cert.fingerprint}")
        if cert.origin != "given":
            lines.append("  the phone's browser warns once that it does not know this certificate: compare the "
                         "fingerprint (in the warning's details), then go on")
    elif remote:
        lines.append("  a phone's browser gives the camera only to https pages: add --https for the webcam and game")
    return "\n".join(lines)


def serve(host: str = "127.0.0.1", port: int = 8000, https: bool = False, certfile: str | Path | None = None,
          keyfile: str | Path | None = None, **app_options: Any) -> None:
    """Run the server with uvicorn until interrupted. ``https``: over TLS with a self-signed certificate
    kept in the user's config folder (:func:`ferkit.apps.tls.ensure_certificate`), or with ``certfile``
    and ``keyfile`` when given."""
    if (certfile is None) != (keyfile is None):
        raise ConfigError("give --certfile and --keyfile together")
    lan = lan_addresses()
    cert = (given_certificate(certfile, keyfile) if certfile is not None and keyfile is not None
            else ensure_certificate(addresses=lan) if https else None)
    app = create_app(**app_options)
    tls = {"ssl_certfile": str(cert.certfile), "ssl_keyfile": str(cert.keyfile)} if cert else {}
    print(startup_message(host, port, cert, lan), flush=True)
    uvicorn.Server(uvicorn_config(app, host, port, log_level="info", **tls)).run()
