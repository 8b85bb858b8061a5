"""Reading node.toml: TOML, environment overrides, validation, and the operator's problem list.

Pydantic reports every problem it finds in one ``ValidationError``; each becomes one line of the
``ConfigError``, ``<file>: <key path>: <what is wrong>``, with the key path written as the file
writes it (``resources[residents].keys.id_number``, not ``resources.0.keys.id_number``) and the
message saying what is allowed. The environment overrides are validated like the file's values.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from provider_node.config.models import SECTIONS, NodeConfig
from provider_node.config.values import ENUM_LABELS, RESOURCE_ID_RE, ConfigError

__all__ = ["load_config"]

# The key NodeConfig takes from load_config, not from the file.
_PATH_KEY = "path"
# Key path parts written as they are; anything else is quoted (a key name with a space, a dot).
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_+-]+")


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> NodeConfig:
    """Read, override from the environment (``os.environ`` unless given), resolve and validate."""
    config_path = Path(path).expanduser().absolute()
    raw = _read(config_path)
    problems = _apply_environment(raw, os.environ if environ is None else environ)
    if _PATH_KEY in raw:
        problems.append(f"{config_path}: {_PATH_KEY}: {_unknown_key_message(NodeConfig, True)}")
    document = {key: value for key, value in raw.items() if key != _PATH_KEY}
    try:
        config = NodeConfig.model_validate(
            {**document, _PATH_KEY: config_path}, context={"base": config_path.parent}
        )
    except ValidationError as exc:
        problems += [f"{config_path}: {_describe(error, raw)}" for error in exc.errors()]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _read(config_path: Path) -> dict[str, Any]:
    try:
        with config_path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{config_path}: is a directory, not a configuration file") from None
    except PermissionError:
        raise ConfigError(f"{config_path}: permission denied") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Set ``BIDUI_<SECTION>_<KEY>`` values into ``raw``; return the ones that are not usable."""
    problems: list[str] = []
    for section, model in SECTIONS.items():
        for key, field in model.model_fields.items():
            variable = f"BIDUI_{section.upper()}_{key.upper()}"
            if variable not in environ:
                continue
            value: object = environ[variable]
            # The environment holds only text; TOML would have given these keys a number.
            if field.annotation is int:
                try:
                    value = int(environ[variable].strip())
                except ValueError:
                    problems.append(f"environment {variable}: expected an integer")
                    continue
            table = raw.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = value
    return problems


def _describe(error: ErrorDetails, raw: Mapping[str, Any]) -> str:
    context = error.get("ctx", {})
    # problem(..., *at) names a key below the one pydantic reports (see values.problem).
    loc = (*error["loc"], *context.get("at", ()))
    return f"{_key_path(loc, raw)}: {_message(error, loc)}"


def _key_path(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """``("resources", 0, "keys", "id number")`` -> ``resources[residents].keys.'id number'``."""
    parts: list[str] = []
    for position, part in enumerate(loc):
        if isinstance(part, int):
            # A resource is named by its id when it has a valid one, a calendar year by its
            # year, else by position; a position within a list of values (modes, holidays) is
            # left out: the message names the value.
            if loc[:position] == ("resources",):
                parts[-1] += f"[{_resource_name(raw, part)}]"
            elif loc[:position] == ("calendar", "years"):
                parts[-1] += f"[{_year_name(raw, part)}]"
        elif part != "[key]":  # pydantic's marker for a table key that failed, not a key itself
            parts.append(part if _PLAIN_KEY_RE.fullmatch(part) else repr(part))
    return ".".join(parts)


def _year_name(raw: Mapping[str, Any], position: int) -> str:
    calendar = raw.get("calendar")
    years = calendar.get("years") if isinstance(calendar, dict) else None
    table = years[position] if isinstance(years, list) and position < len(years) else None
    year = table.get("year") if isinstance(table, dict) else None
    return str(year) if isinstance(year, int) and not isinstance(year, bool) else f"#{position + 1}"


def _resource_name(raw: Mapping[str, Any], position: int) -> str:
    resources = raw.get("resources")
    table = resources[position] if isinstance(resources, list) else None
    resource_id = table.get("id") if isinstance(table, dict) else None
    if isinstance(resource_id, str) and RESOURCE_ID_RE.fullmatch(resource_id):
        return resource_id
    return f"#{position + 1}"


_KIND_MESSAGES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "path_type": "must be a string",
}
# Shapes: the field's description says which one it takes, e.g. "a non-empty list, e.g. [...]".
_SHAPE_MESSAGES = {
    "model_type": "a table",
    "dict_type": "a table",
    "mapping_type": "a table",
    "tuple_type": "a list",
    "list_type": "a list",
    "too_short": "not empty",
}


def _message(error: ErrorDetails, loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    if kind == "bidui_config":
        return str(error.get("ctx", {})["message"])
    if kind in _KIND_MESSAGES:
        return _KIND_MESSAGES[kind]
    if kind == "extra_forbidden":
        model, _ = _walk(loc[:-1])
        return _unknown_key_message(model, len(loc) == 1)
    if kind == "enum":
        enum, _ = _walk(loc)
        if isinstance(enum, type) and issubclass(enum, StrEnum):
            expected = ", ".join(member.value for member in enum)
            label = ENUM_LABELS.get(enum, "value")
            return f"unknown {label} {error['input']!r} (expected {expected})"
    if kind in _SHAPE_MESSAGES:
        _, field = _walk(loc)
        if field is not None and field.description:
            return f"must be {field.description}"
        if len(loc) == 1 and kind == "model_type":
            return f"must be a table ([{loc[0]}])"
        if loc[0] == "resources" and len(loc) == 2:
            return "must be a table ([[resources]])"
        return f"must be {_SHAPE_MESSAGES[kind]}"
    # Not expected from node.toml's types; pydantic's own words rather than nothing.
    return error["msg"]


def _unknown_key_message(model: Any, top_level: bool) -> str:
    names = [name for name in getattr(model, "model_fields", {}) if name != _PATH_KEY]
    if top_level:
        return f"unknown section (expected {', '.join(names)})"
    return f"unknown key (expected one of: {', '.join(names)})"


def _walk(loc: tuple[int | str, ...]) -> tuple[Any, FieldInfo | None]:
    """The type declared at ``loc`` in ``NodeConfig``, and the field it belongs to if it is one."""
    current: Any = NodeConfig
    field: FieldInfo | None = None
    for part in loc:
        current = _unwrap(current)
        origin, args = typing.get_origin(current), typing.get_args(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None, None
            current = field.annotation
            continue
        field = None
        if origin is tuple and args:
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[0] if part == "[key]" else args[1]
        else:
            return None, None
    return _unwrap(current), field


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
