"""User lowerings: how kerasjit compiles a custom layer class or a Lambda layer it cannot read.

A Lambda layer's config holds Python bytecode and a custom layer's holds only its constructor
arguments, so kerasjit cannot know what they compute. The user says it once, as a function of the
layer's inputs written with kerasjit's NumPy-like builder (`ops`):

    import kerasjit

    @kerasjit.register_layer("Scale")            # a custom layer class (or "package>Scale")
    def lower_scale(ops, x):
        return x * ops.weight("w") + ops.config["offset"]

    kerasjit.register_layer("lam", lambda ops, x: ops.relu(x) * 2.0)   # a Lambda layer, by its name

The function is called once per call of the layer while compiling, as `fn(ops, *args)`: `args` are
the call's positional arguments (tensors, or lists of them as the layer received them), and a Lambda's
`arguments` come as keywords. It returns a tensor or a list of them. See README, "Custom layers,
Lambda layers and operations".

This module is light (no compiler import): registering costs nothing, and the registrations' hashes
are part of the artifact cache key, so a changed lowering is compiled again, never served stale.
"""
from __future__ import annotations

import hashlib
import inspect
import types
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["register_layer", "unregister_layer", "registered_layers", "Registration"]


@dataclass(frozen=True)
class Registration:
    """One registered lowering: the name it answers to, the function, and a hash of its code."""

    name: str
    fn: Callable[..., Any]
    fingerprint: str


_REGISTRY: dict[str, Registration] = {}


def register_layer(name: str, lower: Callable[..., Any] | None = None, *, version: str = "") -> Any:
    """Compile layers named `name` with `lower(ops, *inputs) -> tensor(s)`; usable as a decorator.

    `name` is a layer class name as the config records it (`"MyLayer"`, or its registered name
    `"my_package>MyLayer"`), or for a Lambda layer its layer name (`"my_lambda"`) or, in Keras 3
    files, its function's name. A registration replaces any earlier one of the same name, and wins
    over kerasjit's own rule for that class. `version` joins the cache key: change it when `lower`
    calls helpers whose code changed (changes to `lower`'s own code are detected by themselves).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_layer: name must be a non-empty string, not {name!r}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"register_layer({name!r}): {fn!r} is not callable")
        _REGISTRY[name] = Registration(name, fn, _fingerprint(fn, version))
        return fn

    return add if lower is None else add(lower)


def unregister_layer(name: str) -> None:
    """Forget the lowering registered for `name` (no error if there is none)."""
    _REGISTRY.pop(name, None)


def registered_layers() -> dict[str, Registration]:
    """Every registration, by name."""
    return dict(_REGISTRY)


def lookup(layer_cfg: dict) -> Registration | None:
    """The registration that applies to a layer config, or None: by class name, registered name, and
    for a Lambda layer also by layer name and (Keras 3) function name."""
    cfg = layer_cfg.get("config") if isinstance(layer_cfg.get("config"), dict) else {}
    keys = [layer_cfg.get("class_name"), layer_cfg.get("registered_name")]
    # a registered class is "package>Class" in `registered_name` (.keras) or `class_name` (legacy .h5)
    keys += [k.rsplit(">", 1)[1] for k in keys if isinstance(k, str) and ">" in k]
    if layer_cfg.get("class_name") == "Lambda":
        keys.insert(0, cfg.get("name") or layer_cfg.get("name"))
        fn = cfg.get("function")
        if isinstance(fn, dict) and fn.get("class_name") == "function" and isinstance(fn.get("config"), str):
            keys.insert(1, fn["config"])
    for k in keys:
        if isinstance(k, str) and k in _REGISTRY:
            return _REGISTRY[k]
    return None


def fingerprint() -> str:
    """A hash of every registration ('' without any), for the artifact cache key."""
    if not _REGISTRY:
        return ""
    h = hashlib.sha256()
    for name in sorted(_REGISTRY):
        h.update(f"{name}\0{_REGISTRY[name].fingerprint}\0".encode())
    return h.hexdigest()


def _fingerprint(fn: Callable[..., Any], version: str) -> str:
    """What identifies a lowering's behaviour: its name, source text, bytecode (with the constants and
    nested functions it holds), defaults and closure values."""
    h = hashlib.sha256(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}\0{version}".encode())
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        pass
    code = getattr(fn, "__code__", None)
    if code is None and callable(fn):
        code = getattr(getattr(fn, "__call__", None), "__code__", None)
    if code is not None:
        _hash_code(h, code)
    for value in (getattr(fn, "__defaults__", None) or ()):
        h.update(_stable_repr(value).encode())
    for cell in (getattr(fn, "__closure__", None) or ()):
        try:
            h.update(_stable_repr(cell.cell_contents).encode())
        except ValueError:  # an empty cell
            pass
    return h.hexdigest()


def _hash_code(h: "hashlib._Hash", code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _hash_code(h, c)
        else:
            h.update(_stable_repr(c).encode())


def _stable_repr(value: Any) -> str:
    """repr for plain data; the type name for anything else (whose repr may hold an address)."""
    if isinstance(value, (bool, int, float, complex, str, bytes, type(None))):
        return repr(value)
    if isinstance(value, (tuple, list, frozenset)):
        return type(value).__name__ + "(" + ",".join(_stable_repr(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_stable_repr(k)}:{_stable_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, types.FunctionType):  # a helper: its code (not its closure: no cycles)
        inner = hashlib.sha256(value.__qualname__.encode())
        _hash_code(inner, value.__code__)
        return inner.hexdigest()
    if type(value).__name__ == "ndarray":
        return f"ndarray{value.dtype}{value.shape}" + hashlib.sha256(value.tobytes()).hexdigest()
    return type(value).__qualname__
