"""A progress bar on a terminal (tqdm when installed), nothing otherwise."""
from __future__ import annotations

import sys
from typing import Any


class Progress:
    """`update(n)` and `describe(text)`; silent when stderr is not a TTY or tqdm is missing."""

    def __init__(self, total: int, desc: str = "bench"):
        self._bar: Any = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)
            except ImportError:
                pass

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)

    def write(self, line: str) -> None:
        """A log line on stderr that does not break the bar."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
