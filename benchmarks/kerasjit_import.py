"""Import kerasjit, installed or straight from this checkout.

The repository root is the package (setuptools `package-dir = {"kerasjit": "."}`), so a checkout that
is not pip-installed has no `kerasjit` on sys.path; then the root is loaded under that name.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent


def import_kerasjit() -> ModuleType:
    """The `kerasjit` module; raises ImportError when neither an install nor the checkout provides it."""
    try:
        import kerasjit

        return kerasjit
    except ImportError:
        init = REPO_ROOT / "__init__.py"
        if not init.exists():
            raise ImportError(f"kerasjit is not installed and {init} does not exist") from None
    spec = importlib.util.spec_from_file_location("kerasjit", init, submodule_search_locations=[str(REPO_ROOT)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kerasjit"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["kerasjit"]
        raise
    return module
