"""Artifacts and the cache: every file of an artifact (numba's cache included) is checked against its
manifest, and the manifest against itself and this machine; a damaged or foreign artifact is rejected
with an `ArtifactError` by `load` and rebuilt by `compile`, never run. Concurrent compiles leave one
valid artifact; a read-only cache compiles into a temporary directory with a warning."""
from __future__ import annotations

import gc
import json
import os
import py_compile
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import ArtifactError, CacheWarning, CompileError
from kerasjit.runtime.artifact import MANIFEST, MODULE, manifest_checksum
from oracle import assert_matches, keras_predict
from reliability_util import report, saved

COUNTS = {"rejected_by_load": 0, "rebuilt_by_compile": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    report("artifacts", **COUNTS)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, cache_dir):
    """(Keras model, its compile arguments, a private cache, a pristine copy of the compiled artifact).
    The private cache holds a copy of the session cache's artifact, so damaging it harms no other test."""
    m, files = saved("functional")
    cm = kerasjit.compile(*files["keras"], cache_dir=cache_dir)
    cache = tmp_path_factory.mktemp("artifact_cache")
    shutil.copytree(cm.path, cache / cm.path.name, copy_function=shutil.copy2)  # keeps mtimes, as `save` does
    copy = tmp_path_factory.mktemp("pristine") / "model.kjit"
    shutil.copytree(cm.path, copy, copy_function=shutil.copy2)
    return m, files["keras"], cache, copy


def _x(n: int = 4) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)


def _listed(path: Path) -> list[str]:
    return sorted(json.loads((path / MANIFEST).read_text())["files"])


def test_numba_cache_files_are_in_the_manifest(pristine):
    names = _listed(pristine[3])
    assert MODULE in names and "weights.bin" in names
    assert any(n.endswith(".nbi") for n in names) and any(n.endswith(".nbc") for n in names), names
    on_disk = sorted(p.relative_to(pristine[3]).as_posix() for p in pristine[3].rglob("*") if p.is_file())
    assert sorted(set(on_disk) - {MANIFEST}) == names, "a file of the artifact is not hashed"


# ------------------------------------------------------------------ damage

def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x5A
    p.write_bytes(bytes(data))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _append(p: Path) -> None:
    with open(p, "ab") as f:
        f.write(b"\0garbage")


DAMAGE = {"flip": _flip, "truncate": _truncate, "append": _append, "delete": Path.unlink}


def _victim(pristine, tmp_path: Path) -> Path:
    v = tmp_path / "victim.kjit"
    shutil.copytree(pristine[3], v, copy_function=shutil.copy2)
    return v


def test_every_file_damaged_every_way_is_rejected(pristine, tmp_path):
    names = _listed(pristine[3]) + [MANIFEST]
    for name in names:
        for how, damage in DAMAGE.items():
            v = _victim(pristine, tmp_path)
            damage(v / name)
            COUNTS["rejected_by_load"] += 1
            with pytest.raises(ArtifactError) as info:
                kerasjit.load(v)
            assert str(v) in str(info.value), (name, how, str(info.value))
            shutil.rmtree(v)
    cm = kerasjit.load(_victim(pristine, tmp_path))  # the control: an intact copy loads and runs
    assert_matches(cm.predict(_x()), keras_predict(pristine[0], _x()), "intact copy")


def _edit_manifest(path: Path, edit, recompute: bool) -> None:
    m = json.loads((path / MANIFEST).read_text())
    edit(m)
    if recompute:
        m["checksum"] = manifest_checksum(m)
    (path / MANIFEST).write_text(json.dumps(m))


HAND_EDITS = {
    "smaller arena": lambda m: m.update(arena_per_sample=1),
    "other input shape": lambda m: m["inputs"][0].update(shape=[None, 7]),
    "other output count": lambda m: m["outputs"].append(dict(m["outputs"][0])),
    "weights hash swapped": lambda m: m["files"].update({"weights.bin": m["files"][MODULE]}),
    "file dropped from the list": lambda m: m["files"].pop(next(n for n in m["files"] if n.endswith(".nbc"))),
    "checksum removed": lambda m: m.pop("checksum"),
}
FOREIGN = {
    "another kerasjit": lambda m: m["env"].update(kerasjit="0.0.1"),
    "other kerasjit sources": lambda m: m["env"].update(source="0" * 32),
    "another numba": lambda m: m["env"].update(numba="0.50.0"),
    "another llvmlite": lambda m: m["env"].update(llvmlite="9.9.9"),
    "another CPU": lambda m: m["env"].update(cpu="pentium4"),
    "other CPU features": lambda m: m["env"].update(cpu_features="0" * 16),
    "another format": lambda m: m.update(format=99),
    "a file outside the artifact": lambda m: m["files"].update({"../escape": "0" * 64}),
}


@pytest.mark.parametrize("edit", list(HAND_EDITS) + list(FOREIGN))
def test_hand_edited_or_foreign_manifest_is_rejected(pristine, tmp_path, edit):
    """Hand edits leave the checksum stale; a foreign artifact has a valid checksum (it is one that
    another kerasjit, numba or CPU made honestly) and is refused for what it was made for."""
    v = _victim(pristine, tmp_path)
    _edit_manifest(v, HAND_EDITS.get(edit) or FOREIGN[edit], recompute=edit in FOREIGN)
    COUNTS["rejected_by_load"] += 1
    with pytest.raises(ArtifactError) as info:
        kerasjit.load(v)
    msg = str(info.value)
    if edit in FOREIGN and edit not in ("another format", "a file outside the artifact"):
        assert "made for" in msg and "recompile" in msg, msg
    elif edit in HAND_EDITS and edit != "file dropped from the list":
        assert "checksum" in msg, msg


def test_planted_bytecode_is_never_run(pristine, tmp_path):
    """A `.pyc` beside the generated module, with the header Python checks (the source's mtime and
    size), is not listed in the manifest; kerasjit compiles the verified source and never reads it."""
    v = _victim(pristine, tmp_path)
    src = v / MODULE
    evil = tmp_path / "evil.py"
    body = "raise RuntimeError('planted bytecode ran')\n"
    evil.write_text(body + "#" * (src.stat().st_size - len(body) - 1) + "\n")
    assert evil.stat().st_size == src.stat().st_size
    os.utime(evil, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns))
    import importlib.util
    py_compile.compile(str(evil), cfile=importlib.util.cache_from_source(str(src)), doraise=True)
    cm = kerasjit.load(v)
    assert_matches(cm.predict(_x()), keras_predict(pristine[0], _x()), "with a planted .pyc")


LOAD_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np, kerasjit
    cm = kerasjit.load(sys.argv[1])
    y = cm.predict(np.ones((2, 6), np.float32))
    s = cm._run.stats
    print(json.dumps({"misses": sum(s.cache_misses.values()), "hits": sum(s.cache_hits.values())}))
""")


def test_copy_without_modification_times_keeps_numbas_cache(pristine, tmp_path):
    """numba keys its index on the module's mtime: a copy that loses it (cp without -p) is put right
    on load, so a fresh process still loads machine code from the cache and the artifact stays valid."""
    v = tmp_path / "plain_copy.kjit"
    shutil.copytree(pristine[3], v, copy_function=shutil.copy)
    time.sleep(0.01)
    os.utime(v / MODULE)  # certainly another mtime than the recorded one
    script = tmp_path / "child.py"
    script.write_text(LOAD_CHILD)
    for _ in range(2):
        out = subprocess.run([sys.executable, str(script), str(v)], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        info = json.loads(out.stdout.strip().splitlines()[-1])
        assert info["misses"] == 0 and info["hits"] >= 1, info
    kerasjit.load(v)  # numba rewrote nothing: every hash still holds


# ------------------------------------------------------------------ the cache rebuilds

# each rebuild is a numba compile: two kinds here, every kind of damage in the load tests above
REBUILDS = {
    "numba .nbc flipped": lambda d: _flip(next((d / "__pycache__").glob("*run*.nbc"))),
    "made by another numba": lambda d: _edit_manifest(d, FOREIGN["another numba"], recompute=True),
}


@pytest.mark.parametrize("damage", list(REBUILDS))
def test_cache_rebuilds_a_damaged_artifact(pristine, damage, caplog):
    m, args, cache, _ = pristine
    dest = kerasjit.compile(*args, cache_dir=cache).path
    REBUILDS[damage](dest)
    with caplog.at_level("WARNING", logger="kerasjit"):
        cm = kerasjit.compile(*args, cache_dir=cache)
    assert "unusable" in caplog.text and "recompiling" in caplog.text
    assert cm.path == dest
    assert_matches(cm.predict(_x(5)), keras_predict(m, _x(5)), damage)
    kerasjit.load(dest)  # the rebuilt artifact is valid
    COUNTS["rebuilt_by_compile"] += 1


def test_failed_compile_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """A compile that fails after its artifact was staged (numba, or the self-test) publishes nothing
    and removes its staging directory."""
    import kerasjit.api as api
    _, files = saved("functional")
    cache = tmp_path / "cache"

    def numba_fails(cm):
        raise RuntimeError("numba failed (simulated)")

    monkeypatch.setattr(api, "_warm_up", numba_fails)
    with pytest.raises(CompileError, match="simulated"):
        kerasjit.compile(*files["keras"], cache_dir=cache)
    gc.collect()
    assert list(cache.iterdir()) == [], list(cache.iterdir())


# ------------------------------------------------------------------ concurrency and permissions

COMPILE_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    model, cache, start, out = sys.argv[1:5]
    import kerasjit
    while time.time() < float(start):  # both processes start compiling at the same moment
        time.sleep(0.005)
    cm = kerasjit.compile(model, cache_dir=cache)
    np.save(out, cm.predict(np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)))
    print(json.dumps({"path": str(cm.path)}))
""")


def test_two_processes_compile_the_same_model_at_once(tmp_path):
    m, files = saved("functional")
    cache = tmp_path / "fresh_cache"
    script = tmp_path / "child.py"
    script.write_text(COMPILE_CHILD)
    start = time.time() + 8  # past both interpreters' start-up
    env = {**os.environ, "KERASJIT_SELF_TEST": "0"}
    procs = [subprocess.Popen([sys.executable, str(script), files["keras"][0], str(cache), str(start),
                               str(tmp_path / f"y{i}.npy")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    paths = {json.loads(o[0].strip().splitlines()[-1])["path"] for o in outs}
    entries = sorted(p.name for p in cache.iterdir())
    entries = [e for e in entries if e != ".code"]  # the index of compiled code
    assert len(entries) == 1 and not entries[0].startswith("."), entries  # one artifact, no staging dirs
    assert paths == {str(cache / entries[0])}
    x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)
    for i in range(2):
        assert_matches(np.load(tmp_path / f"y{i}.npy"), keras_predict(m, x), f"process {i}")
    cm = kerasjit.load(cache / entries[0])  # valid: every file, numba's cache included, matches
    assert_matches(cm.predict(x), keras_predict(m, x), "the artifact they left")
    report("concurrent compiles", processes=2, artifacts_left=len(entries))


def _read_only(path: Path, monkeypatch) -> str:
    """Make `path` read-only for kerasjit: by permissions, or, for root (whom permissions do not stop),
    by failing every attempt to create a directory in it as a read-only filesystem would."""
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        path.chmod(0o555)
        return "permissions"
    import errno
    import tempfile
    real = tempfile.mkdtemp

    def mkdtemp(suffix=None, prefix=None, dir=None):
        if dir is not None and Path(dir).resolve() == path.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(suffix, prefix, dir)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return "simulated"


def test_read_only_cache_compiles_in_a_temporary_directory(tmp_path, monkeypatch):
    m, files = saved("functional")
    cache = tmp_path / "ro_cache"
    how = _read_only(cache, monkeypatch)
    try:
        with pytest.warns(CacheWarning, match="not writable") as rec:
            cm = kerasjit.compile(*files["keras"], cache_dir=cache)
        assert str(cache) in str(rec[0].message)
        assert cache not in cm.path.parents and cm.path.exists()
        assert_matches(cm.predict(_x(3)), keras_predict(m, _x(3)), "read-only cache")
        assert list(cache.iterdir()) == []
        temp = cm.path
        del cm
        gc.collect()
        assert not temp.exists(), "the temporary artifact outlived its model"
    finally:
        cache.chmod(0o755)
    report("read-only cache", mode=how)


def test_read_only_cache_with_the_artifact_in_it_loads_it(tmp_path, monkeypatch):
    m, files = saved("functional")
    cache = tmp_path / "ro_full"
    first = kerasjit.compile(*files["keras"], cache_dir=cache)
    _read_only(cache, monkeypatch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)
            cm = kerasjit.compile(*files["keras"], cache_dir=cache)
        assert cm.path == first.path
        assert_matches(cm.predict(_x(3)), keras_predict(m, _x(3)), "read-only cache hit")
    finally:
        cache.chmod(0o755)
