"""The repository's scripts (tools/, benchmarks/) imported as modules, for the tests of their functions."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[1]


def load_script(relative: str) -> ModuleType:
    """ROOT/``relative`` (e.g. "tools/soup_checkpoints.py") imported as a module named after its file."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
