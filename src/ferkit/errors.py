"""The base of every error ferkit reports to its user as one line: ``ferkit: error: MESSAGE``, exit 2."""

from __future__ import annotations


class FerkitError(Exception):
    """Bad input that the user can fix (a file, an option); the message names it and says why.

    Subclasses are also ``ValueError``s where they always were, so existing ``except ValueError`` code keeps working.
    """
