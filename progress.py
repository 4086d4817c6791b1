"""Progress bars for long work (compiling a large model, bench, check, batch prediction).

A bar is drawn on stderr only when stderr is a terminal, so pipes, logs and CI output stay clean;
`KERASJIT_PROGRESS=1` forces it on and `KERASJIT_PROGRESS=0` off.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")


def enabled(requested: bool | None = None) -> bool:
    """Whether to draw: `requested` when given, else $KERASJIT_PROGRESS, else whether stderr is a TTY."""
    if requested is not None:
        return requested
    env = os.environ.get("KERASJIT_PROGRESS", "")
    if env in ("0", "1"):
        return env == "1"
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Bar:
    """A tqdm bar, or a silent stand-in with the same `update`/`describe`/`close` calls."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", show: bool | None = None):
        self._bar: Any = None
        if enabled(show):
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def describe(self, text: str) -> None:
        """Show `text` as the bar's label (the stage or item being worked on)."""
        if self._bar is not None:
            self._bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it",
          show: bool | None = None) -> Iterator[T]:
    """Iterate `items`, advancing a bar by one per item (total from `len(items)` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Bar(total, desc, unit, show) as bar:
        for item in items:
            yield item
            bar.update()
