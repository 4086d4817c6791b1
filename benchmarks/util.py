"""Small helpers shared by the parent and the worker processes (standard library only)."""
from __future__ import annotations

import re
import resource
import sys

__all__ = ["short_reason", "peak_rss_mib", "current_rss_mib"]


def short_reason(e: BaseException, limit: int = 160) -> str:
    """`Type: message` in one line of at most `limit` characters, for a table cell.

    File paths are dropped (they are the suite's own files); a first line that ends in ':' and
    introduces a list (kerasjit's unsupported layers) gets the list's `(ClassName)` items appended.
    """
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    msg = _PATH.sub("", lines[0]) if lines else ""
    if len(lines) > 1 and msg.endswith(":"):
        classes = list(dict.fromkeys(c for line in lines[1:] for c in re.findall(r"\((\w+)\)", line)))
        msg += " " + (", ".join(classes) if classes else "; ".join(lines[1:]))
    elif len(lines) > 1 and len(msg) < 20:  # tf2onnx and XLA put the useful part on the last line
        msg = _PATH.sub("", lines[-1])
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_PATH = re.compile(r"(?:[A-Za-z]:)?/[^\s:'\"]+/[^\s:'\"]*:?\s*")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (getrusage ru_maxrss), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    """Resident set size now (VmRSS of /proc/self/status), in MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def hide_tensorflow() -> None:
    """Make `import tensorflow` fail in this process, as if it were not installed.

    Keras 3 imports TensorFlow whenever it is installed (seeding, file I/O), whatever the backend: that
    costs the JAX peer seconds of import and hundreds of MiB of memory that are not its own. Call this
    before importing Keras in a process that must not hold TensorFlow.
    """
    for name in ("tensorflow", "tensorflow.compat", "tensorflow.experimental", "tf_keras"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
