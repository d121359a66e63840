"""Coerce a config dataclass's fields to their declared types, or refuse them naming key, value and type.

YAML 1.1 (PyYAML) reads ``1e-4`` as the string '1e-4' (it wants ``1.0e-4``), and ``--set
train.epochs=two`` gives a string too; without this a wrong type surfaces later as a traceback deep
in the trainer. Accepted conversions are the lossless ones: a numeric string to a number, an int to a
float, a whole float to an int, a list to a tuple.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from edgemtl.errors import EdgeMTLError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class _Bad(Exception):
    pass


def _scalar(tp: type, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if isinstance(value, bool):  # True is an int in Python, never a number in a config
        raise _Bad
    if tp is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Bad from None
        raise _Bad
    if tp is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _Bad from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Bad
    return value


def coerce(tp: Any, value: Any) -> Any:
    """``value`` as type ``tp`` (int, float, bool, str, X | None, tuple[...], list[X], dict[K, V], Any)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce(a, value)
            except _Bad:
                continue
        raise _Bad
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v) for v in value)
        if len(value) != len(args):
            raise _Bad
        return tuple(coerce(a, v) for a, v in zip(args, value))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Bad
        return [coerce(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad
        if not args:
            return dict(value)
        return {coerce(args[0], k): coerce(args[1], v) for k, v in value.items()}
    if tp in _NAMES:
        return _scalar(tp, value)
    return value


def describe(tp: Any) -> str:
    if tp in _NAMES:
        return _NAMES[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin is list:
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def coerce_fields(obj: Any, section: str) -> None:
    """Coerce every field of dataclass ``obj`` in place; EdgeMTLError names ``section.key``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp = hints.get(f.name, Any)
        value = getattr(obj, f.name)
        try:
            setattr(obj, f.name, coerce(tp, value))
        except _Bad:
            raise EdgeMTLError(
                f"{section}.{f.name}: expected {describe(tp)}, got {value!r} "
                f"({type(value).__name__}); e.g. --set {section}.{f.name}="
                f"{_example(f)}"
            ) from None


def _example(f: dataclasses.Field) -> str:
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return repr(default)
    if isinstance(default, tuple):
        return "[" + ",".join(str(v) for v in default) + "]"
    return str(default) if default is not None else "..."
