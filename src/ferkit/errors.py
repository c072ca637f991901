"""The base of every error ferkit reports to its user as one line: ``ferkit: error: MESSAGE``, exit 2."""

from __future__ import annotations

import importlib
from types import ModuleType


class FerkitError(Exception):
    """Bad input that the user can fix (a file, an option); the message names it and says why.

    Subclasses are also ``ValueError``s where they always were, so existing ``except ValueError`` code keeps working.
    """


class ConfigError(FerkitError, ValueError):
    """An option or setting that is invalid, unknown, or impossible on this machine."""


class DeviceError(FerkitError, RuntimeError):
    """The device asked for (``--device cuda``) is not available here."""


class DivergedError(FerkitError, FloatingPointError):
    """The training loss became NaN or infinite (a smaller ``--lr`` usually helps)."""


class MissingExtraError(FerkitError, ImportError):
    """A feature needs an optional dependency that is not installed."""


def optional_import(module: str, extra: str, what: str) -> ModuleType:
    """``module``, or a MissingExtraError: "WHAT needs the optional extra: pip install 'ferkit[EXTRA]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{what} needs the optional extra: pip install 'ferkit[{extra}]'") from None
