"""Class-folder names as the seeds and common data sets spell them, mapped onto ferkit's classes.

Any case; ``angry``/``anger``, ``disgust``/``disgusted``, ``fear``/``fearful``/``afraid``,
``happy``/``happiness``, ``sad``/``sadness``, ``surprise``/``surprised``, ``neutral``, ``contempt``.
Other names are mapped with ``--classes NAME=CLASS`` (``joy=happy``; ``NAME=skip`` leaves the folder out).
The classes are FER2013's seven in their order, with Contempt as an eighth when the data holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ConfigError
from .labels import FER2013_CLASSES

CONTEMPT = "Contempt"
SKIP = "skip"
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Angry": ("angry", "anger"),
    "Disgust": ("disgust", "disgusted"),
    "Fear": ("fear", "fearful", "afraid"),
    "Happy": ("happy", "happiness"),
    "Sad": ("sad", "sadness"),
    "Surprise": ("surprise", "surprised"),
    "Neutral": ("neutral",),
    CONTEMPT: ("contempt",),
}
_LOOKUP = {name: cls for cls, names in SYNONYMS.items() for name in names}
ACCEPTED = ", ".join(_LOOKUP)


def parse_class_map(entries: Iterable[str]) -> dict[str, str]:
    """``["joy=happy", "Misc=skip"]`` -> ``{"joy": "Happy", "misc": "skip"}`` (keys lower case); a ConfigError
    for an entry without ``=`` or with a target that is no class name."""
    mapping = {}
    for entry in entries:
        name, sep, target = entry.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--classes takes FOLDER=CLASS (e.g. joy=happy or misc=skip), not {entry!r}")
        target = target.strip().lower()
        if target != SKIP and target not in _LOOKUP:
            raise ConfigError(f"--classes {entry}: {target!r} is no class; use one of {ACCEPTED} or {SKIP}")
        mapping[name.strip().lower()] = SKIP if target == SKIP else _LOOKUP[target]
    return mapping


def canonical_class(name: str, mapping: Mapping[str, str] | None = None) -> str | None:
    """The class a folder named ``name`` holds (``--classes`` first, then the synonyms), ``skip``, or None."""
    key = name.strip().lower()
    return (mapping or {}).get(key) or _LOOKUP.get(key)


def unknown_class_message(name: str) -> str:
    return (f"unknown class folder {name!r}; accepted names (any case): {ACCEPTED}; "
            f"or map it with --classes {name}=CLASS ({name}=skip leaves it out)")


def dataset_classes(found: Iterable[str]) -> tuple[str, ...]:
    """FER2013's classes, with Contempt appended when ``found`` (the classes present) holds it."""
    return FER2013_CLASSES + ((CONTEMPT,) if CONTEMPT in set(found) else ())
