"""A small on-disk cache of parsed arrays, so that reloading a data set takes well under a second."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_VERSION = "1"


def cache_dir() -> Path:
    return Path(os.environ.get("FERKIT_CACHE_DIR", Path.home() / ".cache" / "ferkit"))


def file_key(path: Path, *extra: object) -> str:
    """A key that changes when the file (path, inode, size, modification or change time) or ``extra`` changes."""
    st = path.stat()
    return "|".join(map(str, (path.resolve(), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, CACHE_VERSION, *extra)))


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]], enabled: bool = True) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, building and storing them on a miss."""
    if not enabled:
        return build()
    target = cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"
    if target.exists():
        try:
            with np.load(target, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # a damaged entry is rebuilt
            target.unlink(missing_ok=True)
    arrays = build()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only or full cache directory only costs speed
    return arrays
