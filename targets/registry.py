"""The target registry: target name -> Target class, filled by ``@register_target``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hcompile.errors import UsageError
from hcompile.targets.base import Target

T = TypeVar("T", bound=type[Target])

_TARGETS: dict[str, type[Target]] = {}


def register_target(name: str) -> Callable[[T], T]:
    def decorate(cls: T) -> T:
        if name in _TARGETS:
            raise ValueError(f"target {name} registered twice")
        cls.name = name
        _TARGETS[name] = cls
        return cls

    return decorate


def get_target(name: str, **options: Any) -> Target:
    """An instance of target ``name``; ``options`` go to its constructor (e.g. ``arch``)."""
    if name not in _TARGETS:
        raise UsageError(f"unknown target '{name}'",
                         hint=f"choose from: {', '.join(sorted(_TARGETS))}")
    return _TARGETS[name](**options)


def target_names() -> list[str]:
    return sorted(_TARGETS)
