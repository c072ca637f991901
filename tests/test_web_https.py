"""``ferkit serve --https``: the self-signed certificate (made once, reused, remade when the LAN address
changes), a given certificate and key, the start-up message, and a real TLS handshake with the server."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
import time
import urllib.request

import pytest

pytest.importorskip("cryptography", reason="the https extra (cryptography) is not installed")

from cryptography import x509  # noqa: E402

from ferkit.apps.server import create_app, serve, startup_message, uvicorn_config  # noqa: E402
from ferkit.apps.tls import config_dir, ensure_certificate, given_certificate  # noqa: E402
from ferkit.errors import ConfigError  # noqa: E402


def _sans(cert):
    ext = x509.load_pem_x509_certificate(cert.certfile.read_bytes()).extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


def test_self_signed_made_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_CONFIG_DIR", str(tmp_path / "config"))
    assert config_dir() == tmp_path / "config"
    first = ensure_certificate(addresses=["192.168.1.23"])
    assert first.origin == "self-signed, made now" and first.certfile.parent == tmp_path / "config" / "tls"
    assert {"localhost", "127.0.0.1", "192.168.1.23"} <= _sans(first)
    assert first.keyfile.stat().st_mode & 0o777 == 0o600
    der = ssl.PEM_cert_to_DER_cert(first.certfile.read_text())
    assert first.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    again = ensure_certificate(addresses=["192.168.1.23"])
    assert again.origin == "self-signed, reused" and again.fingerprint == first.fingerprint
    moved = ensure_certificate(addresses=["10.0.0.7"])  # the laptop joined another network
    assert moved.origin == "self-signed, made now" and moved.fingerprint != first.fingerprint
    assert "10.0.0.7" in _sans(moved)


def test_given_certificate_is_checked(tmp_path):
    a = ensure_certificate(tmp_path / "a", addresses=[])
    b = ensure_certificate(tmp_path / "b", addresses=[])
    assert given_certificate(a.certfile, a.keyfile).origin == "given"
    with pytest.raises(ConfigError, match="not a certificate and its key"):
        given_certificate(a.certfile, b.keyfile)
    with pytest.raises(ConfigError, match="no such file"):
        given_certificate(tmp_path / "nope.pem", a.keyfile)
    with pytest.raises(ConfigError, match="together"):
        serve(certfile=a.certfile)


def test_startup_message(tmp_path):
    cert = ensure_certificate(tmp_path, addresses=["192.168.1.23"])
    text = startup_message("0.0.0.0", 8443, cert, ["192.168.1.23"])
    assert "https://localhost:8443/" in text and "on a phone on the same network: https://192.168.1.23:8443/" in text
    assert cert.fingerprint in text and str(cert.certfile) in text
    local = startup_message("127.0.0.1", 8000, None, ["192.168.1.23"])
    assert "http://localhost:8000/" in local and "--host 0.0.0.0" in local and "192.168.1.23" not in local
    plain = startup_message("0.0.0.0", 8000, None, ["192.168.1.23"])
    assert "http://192.168.1.23:8000/" in plain and "add --https" in plain


def test_tls_handshake(tmp_path):
    """The server answers over TLS with the certificate, which a client that trusts it verifies."""
    import uvicorn

    cert = ensure_certificate(tmp_path, addresses=[])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(create_app(threads=1), "127.0.0.1", port, log_level="warning",
                                           ssl_certfile=str(cert.certfile), ssl_keyfile=str(cert.keyfile)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    context = ssl.create_default_context(cafile=str(cert.certfile))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=context, timeout=5) as r:
                    assert json.load(r) == {"status": "ok"}
                    break
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, ssl.SSLError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(f"https://localhost:{port}/manifest.webmanifest", context=context) as r:
            assert r.headers["content-type"].startswith("application/manifest+json")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
