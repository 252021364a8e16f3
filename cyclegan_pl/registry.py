"""Name -> implementation lookup used for every config string in the package.

Each family of components (generators, discriminators, norms, inits, GAN losses, preprocess
modes, datasets...) owns one :class:`Registry` instance next to its implementations, so a config
name such as ``resnet_9blocks`` or ``lsgan`` resolves in exactly one place and an unknown name
fails with the list of valid choices instead of a ``KeyError``.
"""

from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from config names to objects (classes, builders, functions).

    Args:
        kind: what the entries are, used in error messages (e.g. ``"generator"``).
        option: the config option users set to pick an entry (e.g. ``"model.generator"``);
            named in the error for an unknown entry so the user knows what to change.
    """

    def __init__(self, kind: str, option: Optional[str] = None) -> None:
        self.kind = kind
        self.option = option
        self._entries: Dict[str, T] = {}

    def register(self, name: Optional[str] = None) -> Callable[[T], T]:
        """Decorator adding the decorated object under ``name`` (default: its ``__name__``)."""

        def decorator(obj: T) -> T:
            self.add(name or obj.__name__, obj)  # type: ignore[attr-defined]
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            where = f" (option `{self.option}`)" if self.option else ""
            raise ValueError(
                f"Unknown {self.kind} '{name}'{where}. Choose one of: {', '.join(self.names())}."
            ) from None

    def names(self) -> List[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
