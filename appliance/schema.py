"""Build frozen dataclasses from plain YAML data, collecting every problem with its key path.

One mechanism serves the site configuration and every driver's options, so a wrong key anywhere reads the
same: ``pbx[0].options.date_format: unknown key (did you mean 'date_format'?)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

Problems = list[tuple[str, str]]
_MISSING = object()


def build(cls: type, data: Any, path: str, problems: Problems) -> Any:
    """Return ``cls(**data)`` converted field by field; on any problem append it and return None."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append((path, f"expected a mapping, got {_kind(data)}"))
        return None
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    before = len(problems)
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f"; known keys: {', '.join(sorted(fields))}"
            problems.append((_join(path, key), f"unknown key{hint}"))
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data:
            values[name] = convert(hints[name], data[name], _join(path, name), problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append((_join(path, name), "required key is missing"))
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # __post_init__ checks raise ValueError with the reason
        problems.append((path, str(exc)))
        return None


def convert(hint: Any, value: Any, path: str, problems: Problems) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [option for option in options if option is not type(None)]
        if len(inner) == 1:
            return convert(inner[0], value, path, problems)
        for option in inner:
            trial: Problems = []
            result = convert(option, value, path, trial)
            if not trial:
                return result
        problems.append((path, f"expected one of {', '.join(_name(o) for o in inner)}, got {_kind(value)}"))
        return None
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            problems.append((path, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}"))
        return value
    if origin in (tuple, list):
        args = get_args(hint)
        item_hint = args[0] if args else Any
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            problems.append((path, f"expected a list, got {_kind(value)}"))
            return ()
        return tuple(convert(item_hint, item, f"{path}[{i}]", problems) for i, item in enumerate(value))
    if origin in (dict, typing.Mapping) or hint is dict:
        args = get_args(hint) or (str, Any)
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {_kind(value)}"))
            return {}
        return {
            convert(args[0], k, path, problems): convert(args[1], v, _join(path, k), problems)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path, problems)
    return _scalar(hint, value, path, problems)


def _scalar(hint: Any, value: Any, path: str, problems: Problems) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        problems.append((path, f"expected true or false, got {value!r}"))
        return None
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append((path, f"expected a whole number, got {value!r}"))
        return None
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        problems.append((path, f"expected a number, got {value!r}"))
        return None
    if hint is Decimal:
        # Money: YAML floats are read through their text so 0.1 stays exactly 0.1.
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            problems.append((path, f"expected an amount, got {value!r}"))
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            problems.append((path, f"expected an amount, got {value!r}"))
            return None
    if hint is str:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        problems.append((path, f"expected text, got {_kind(value)}"))
        return None
    return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
