"""A client's calls made by a part it holds, with the part's signature and documentation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["delegated"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def delegated(
    method: Callable[Concatenate[Any, _P], _R], part: str
) -> Callable[Concatenate[Any, _P], _R]:
    """``method`` of the object held in attribute ``part``, as a method of the holder.

    Composition instead of mixins: the holder builds its parts with what they need, and each
    delegated call keeps the part's signature for type checkers and ``help()``.
    """

    @functools.wraps(method)
    def call(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(getattr(self, part), *args, **kwargs)

    return call  # type: ignore[return-value]  # functools.wraps' type hides the ParamSpec
