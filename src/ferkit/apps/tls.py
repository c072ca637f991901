"""HTTPS for ``ferkit serve``: a browser gives the camera only to https pages (and localhost), so a phone
on the LAN needs one. ``ensure_certificate`` makes a self-signed certificate once (with ``cryptography``,
the ``https`` extra), keeps it in the user's config folder and reuses it; ``lan_addresses`` lists what
to open on the phone."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, optional_import

VALID_DAYS = 825  # the longest validity Apple's platforms accept for a TLS server certificate


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    fingerprint: str  # SHA-256 of the DER certificate, colon-separated hex (what browsers show)
    origin: str  # "self-signed, made now", "self-signed, reused" or "given"


def config_dir() -> Path:
    """ferkit's folder for user settings: ``$FERKIT_CONFIG_DIR``, else the platform's (``$XDG_CONFIG_HOME``
    or ~/.config/ferkit on Linux, ~/Library/Application Support/ferkit on macOS, %APPDATA%\\ferkit on Windows)."""
    if os.environ.get("FERKIT_CONFIG_DIR"):
        return Path(os.environ["FERKIT_CONFIG_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "ferkit"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "ferkit"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ferkit"


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback: the one of the default route first (found by
    connecting a UDP socket, which sends nothing), then those its host name resolves to."""
    found: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        found.append(s.getsockname()[0])
    with contextlib.suppress(OSError):
        found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    return [a for a in dict.fromkeys(found) if not ipaddress.ip_address(a).is_loopback]


def fingerprint(certfile: Path) -> str:
    """The SHA-256 fingerprint of a PEM certificate file (its first certificate)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(certfile.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{certfile}: not a PEM certificate ({exc})") from None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _usable(certfile: Path, keyfile: Path, names: list[str]) -> bool:
    """``certfile`` still valid for a day and naming every one of ``names``."""
    x509 = optional_import("cryptography.x509", "https", "ferkit serve --https")
    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.IPAddress)} | set(sans.get_values_for_type(x509.DNSName))
    fresh = cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    return keyfile.is_file() and fresh and set(names) <= have


def ensure_certificate(folder: Path | None = None, addresses: list[str] | None = None) -> Certificate:
    """A self-signed certificate (ECDSA P-256) for localhost, 127.0.0.1, this host's name and its LAN
    ``addresses``, in ``folder`` (default ``config_dir()/tls``): reused while it is valid and names them
    all, made afresh otherwise. The key file is readable by its owner only."""
    folder = folder or config_dir() / "tls"
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    host = socket.gethostname()
    names = ["localhost", "127.0.0.1", *([host] if host else []), *(addresses if addresses is not None else lan_addresses())]
    if certfile.is_file() and _usable(certfile, keyfile, names):
        return Certificate(certfile, keyfile, fingerprint(certfile), "self-signed, reused")
    x509 = optional_import("cryptography.x509", "https", "ferkit serve --https")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ferkit on {host or 'localhost'}")])
    alt: list = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Certificate(certfile, keyfile, fingerprint(certfile), "self-signed, made now")


def given_certificate(certfile: str | Path, keyfile: str | Path) -> Certificate:
    """A certificate and key the user gave (``--certfile``/``--keyfile``), checked to load as a pair."""
    certfile, keyfile = Path(certfile), Path(keyfile)
    for path in (certfile, keyfile):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{certfile} and {keyfile} are not a certificate and its key ({exc})") from None
    return Certificate(certfile, keyfile, fingerprint(certfile), "given")
