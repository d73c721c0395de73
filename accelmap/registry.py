"""Algorithms registered by name: mapping optimizers, co-design methods, tuners, measurers.

A registry is a read-only mapping from name to class. Each subpackage's ``__init__`` imports its
implementations, so importing the registry's module is enough to fill it::

    from accelmap.search.base import OPTIMIZERS
    OPTIMIZERS.names()              # ['annealing', 'dcp', 'exhaustive', ...]
    OPTIMIZERS.get("annealing")     # the class; AccelmapError naming the option for a typo

Third-party algorithms register the same way (``@OPTIMIZERS.register`` on a subclass with a
``name``) and are then accepted wherever the built-in ones are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

from accelmap.errors import AccelmapError

T = TypeVar("T", bound=type)


class Registry(Mapping, Generic[T]):
    """``kind`` names what is registered ("optimizer"); ``option`` is the command-line option
    that selects one (named in the error for an unknown name)."""

    def __init__(self, kind: str, option: str):
        self.kind, self.option = kind, option
        self._items: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator; the class's ``name`` attribute is its key."""
        name = getattr(cls, "name", "")
        if not name:
            raise ValueError(f"{cls.__name__} has no name to register it as a {self.kind}")
        if name in self._items:
            raise ValueError(f"{self.kind} name '{name}' is already registered")
        self._items[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        del self._items[name]

    @contextmanager
    def registered(self, cls: T) -> Iterator[T]:
        """Register ``cls`` for the duration of a ``with`` block (tests, experiments)."""
        self.register(cls)
        try:
            yield cls
        finally:
            self.unregister(cls.name)

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self._items:
            raise AccelmapError(f"unknown {self.kind} '{name}'; expected one of {', '.join(self.names())}",
                                field=self.option)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"
