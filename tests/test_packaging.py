"""The package layout: every code folder with an __init__.py is installed as a kerasjit subpackage."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None


def test_every_subpackage_is_listed_in_pyproject():
    if tomllib is None:
        return
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"kerasjit"}
    for top in ("compiler", "runtime", "kernels", "encoder", "data"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add(".".join(("kerasjit",) + rel.parts))
    assert found <= listed, f"not installed by pip install .: {sorted(found - listed)}"
    assert not any(p.split(".")[0] != "kerasjit" for p in listed)
