"""Issue 16, hardening: corrupt gzip/tar streams, unreadable checkpoints and ONNX models, spaced or
quoted CSV headers; each a one-line ``ferkit: error: ...`` with exit code 2 from the real CLI."""

import pytest

from ferkit.cli import main
from ferkit.data.errors import DataError
from ferkit.errors import FerkitError
from ferkit.inference.images import ImageError
from ferkit.inference.recognizer import VideoError


def run_cli(capsys, *args):
    """``ferkit ARGS`` in this process: (exit code, stdout + stderr)."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def assert_one_line_error(code, output, message):
    """Exit 2 and exactly one line, ``ferkit: error: MESSAGE``: no traceback, no advice to unpickle."""
    assert code == 2, output
    assert output.splitlines() == [f"ferkit: error: {message}"]
    assert "Traceback" not in output and "weights_only=False" not in output


# --- FerkitError: the base of user-facing errors --------------------------------------------------


@pytest.mark.parametrize("error", [DataError("f.csv", "bad"), ImageError("a.jpg", "bad"), VideoError("v.mp4: bad")])
def test_user_facing_errors_are_ferkit_errors_and_still_value_errors(error):
    assert isinstance(error, FerkitError) and isinstance(error, ValueError)


def test_cli_reports_a_ferkit_error_as_one_line(capsys, monkeypatch):
    class Unexpected(FerkitError):  # a FerkitError that is no ValueError: main still reports it in one line
        pass

    def fail(argv):
        raise Unexpected("x.bin: something the user can fix")

    monkeypatch.setattr("ferkit.cli.run", fail)
    assert_one_line_error(*run_cli(capsys, "models"), "x.bin: something the user can fix")
