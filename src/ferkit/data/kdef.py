"""Reader for KDEF (the Karolinska Directed Emotional Faces, https://www.kdef.se), as it is distributed:
``KDEF/<actor folder>/<file>.JPG``, e.g. ``KDEF/AF01/AF01ANS.JPG``.

A file name is session (A or B), gender (F or M), a two-digit actor number, the expression (AF afraid, AN angry,
DI disgusted, HA happy, NE neutral, SA sad, SU surprised) and the angle (S straight, HL/HR half left/right,
FL/FR full left/right); the actor folder is the name's first four letters. An actor (the subject of
``--split-by subject``) is gender + number: both sessions of one person are one subject. The shots are 562x762
photos, so their faces are found and cropped (:mod:`.photos`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .errors import DataError
from .images import IMAGE_SUFFIXES
from .labels import FER2013_CLASSES

EXPRESSIONS = {"AN": "Angry", "DI": "Disgust", "AF": "Fear", "HA": "Happy", "SA": "Sad", "SU": "Surprise",
               "NE": "Neutral"}
ANGLES = ("S", "HL", "HR", "FL", "FR")
_NAME = re.compile(r"([AB])([FM])(\d\d)(AF|AN|DI|HA|NE|SA|SU)(S|HL|HR|FL|FR)", re.IGNORECASE)
_ACTOR = re.compile(r"[AB][FM]\d\d", re.IGNORECASE)
NAME_HELP = ("a KDEF name is session A/B, gender F/M, a two-digit actor number, the expression "
             f"({'|'.join(EXPRESSIONS)}) and the angle ({'|'.join(ANGLES)}), e.g. AF01ANS.JPG")


@dataclass
class KdefListing:
    files: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # FER2013 class indices
    subjects: list[str] = field(default_factory=list)  # gender + number, e.g. F01
    skipped: list[str] = field(default_factory=list)


def parse_angles(angles: Iterable[str]) -> tuple[str, ...]:
    """``["S"]``, ``["S", "HL", "HR"]`` or ``["all"]`` -> the angle codes; a ConfigError for an unknown one."""
    chosen = tuple(dict.fromkeys(a.strip().upper() for a in angles))
    if chosen == ("ALL",):
        return ANGLES
    bad = [a for a in chosen if a not in ANGLES]
    if bad or not chosen:
        raise ConfigError(f"--angles takes KDEF angle codes {', '.join(ANGLES)} (S straight, HL/HR half left/right, "
                          f"FL/FR full left/right) or all, not {', '.join(bad) or 'nothing'}")
    return chosen


def _actor_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _ACTOR.fullmatch(p.name))


def kdef_root(path: Path) -> Path | None:
    """The folder holding the actor folders: ``path`` itself or its ``KDEF/`` subfolder (as in the
    KDEF_and_AKDEF download), or None when it is not a KDEF tree."""
    for root in (path, path / "KDEF"):
        if root.is_dir() and _actor_folders(root):
            return root
    return None


def list_kdef(root: Path, angles: Iterable[str] = ("S",), skip_bad_rows: bool = False) -> KdefListing:
    """The images of the chosen angles, sorted. A file whose name breaks the scheme, or that sits in another
    actor's folder, is a DataError naming it, unless ``skip_bad_rows`` (then counted in ``skipped``)."""
    chosen = parse_angles(angles)
    out = KdefListing()
    for actor_dir in _actor_folders(root):
        for path in sorted(p for p in actor_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            m = _NAME.fullmatch(path.stem)
            problem = None
            if m is None:
                problem = f"not a KDEF file name: {NAME_HELP}"
            elif path.stem[:4].upper() != actor_dir.name.upper():
                problem = f"the name says actor {path.stem[:4].upper()}, but it is in folder {actor_dir.name}"
            if problem is not None:
                if not skip_bad_rows:
                    raise DataError(path, problem + " (use --skip-bad-rows to skip such files)")
                out.skipped.append(f"{path}: {problem}")
                continue
            assert m is not None
            if m.group(5).upper() not in chosen:
                continue
            out.files.append(path)
            out.labels.append(FER2013_CLASSES.index(EXPRESSIONS[m.group(4).upper()]))
            out.subjects.append((m.group(2) + m.group(3)).upper())
    if not out.files:
        raise DataError(root, f"no KDEF images with angle(s) {', '.join(chosen)}")
    return out
