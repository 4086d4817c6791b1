"""Parent side of the worker protocol (worker.py): start an engine process, ask, wait with a deadline."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from .kerasjit_import import REPO_ROOT

__all__ = ["WorkerError", "WorkerClient", "worker_env"]

#: variables that size the thread pools of BLAS, OpenMP, numba and TensorFlow
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


class WorkerError(Exception):
    """The worker died, timed out, or replied `ok: false`; `reply` holds its answer when it gave one."""

    def __init__(self, message: str, reply: dict[str, Any] | None = None):
        super().__init__(message)
        self.reply = reply or {}

    @property
    def unavailable(self) -> bool:
        return bool(self.reply.get("unavailable"))


def worker_env(threads: int) -> dict[str, str]:
    """The environment of every engine process: the same thread count everywhere, quiet TensorFlow."""
    env = dict(os.environ)
    env.update({v: str(threads) for v in THREAD_VARIABLES})
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class WorkerClient:
    """One `python -m benchmarks.worker ENGINE` process; its stderr goes to `log_path`."""

    def __init__(self, engine: str, threads: int, workdir: Path, log_path: Path, start_timeout: float):
        self.engine = engine
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", engine, "--threads", str(threads), "--workdir", str(workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=REPO_ROOT,
            env=worker_env(threads), text=True, bufsize=1)
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._receive(start_timeout)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _receive(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"{self.engine}: no reply within {timeout:.0f} s (killed)") from None
        if line is None:
            rc = self.proc.wait()
            raise WorkerError(f"{self.engine}: worker exited (rc={rc}, see its log)")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error") or "failed", reply)
        return reply

    def request(self, cmd: str, timeout: float, **args: Any) -> dict[str, Any]:
        """Send one request and wait up to `timeout` seconds for its reply."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            rc = self.proc.wait()
            raise WorkerError(f"{self.engine}: worker exited (rc={rc}, see its log)") from None
        return self._receive(timeout)

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within a few seconds."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()

    def kill(self) -> None:
        """Kill this worker process (and only it)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
