"""Name -> implementation lookup used for every config string in the package.

Each family of components (generators, discriminators, norms, inits, GAN losses, preprocess
modes, datasets, methods...) owns one :class:`Registry` beside its implementations, so a config
name such as ``resnet_9blocks`` or ``lsgan`` resolves in exactly one place. :meth:`Registry.choices`
turns the registered names into the type of the option that selects one, so ``--help`` lists the
choices and a typo fails when the command line is parsed.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Generic, Iterator, List, Literal, Tuple, TypeVar, Union

from cyclegan_pl.errors import OptionError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from config names to objects (classes, builders, functions).

    Args:
        kind: what the entries are, used in error messages (e.g. ``"generator"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
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
        """The entry registered as ``name``.

        Raises:
            OptionError: unknown name; the message lists the valid ones.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise OptionError(f"Unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}.") from None

    def names(self) -> List[str]:
        return list(self._entries)

    def choices(self) -> Any:
        """``typing.Literal`` of the names registered so far: the type of an option choosing one."""
        return Literal[tuple(self._entries)]  # type: ignore[valid-type]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}, {self.names()})"


class PatternRegistry(Registry[T]):
    """A :class:`Registry` that also resolves parametrised names such as ``resnet_12blocks``.

    :meth:`get` looks the name up among the registered names first. Failing that, it tries the
    patterns added with :meth:`add_pattern` in order; the first regex that matches the whole name
    hands its match object to the pattern's ``resolve`` function, which returns the entry (or
    raises :class:`~cyclegan_pl.errors.OptionError` when the parameter is out of range).

    Args:
        kind: what the entries are, used in error messages.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self._patterns: List[Tuple[re.Pattern[str], str, Callable[[re.Match[str]], T]]] = []

    def add_pattern(self, regex: str, template: str, resolve: Callable[[re.Match[str]], T]) -> None:
        """Resolve names fully matching ``regex`` through ``resolve(match)``.

        Args:
            regex: regular expression with named groups for the parameters.
            template: how the pattern is shown to users, e.g. ``resnet_<N>blocks``.
            resolve: turns the match into an entry; raises ``OptionError`` for bad parameters.
        """
        self._patterns.append((re.compile(regex), template, resolve))

    def patterns(self) -> List[str]:
        """The user-facing templates of the name patterns."""
        return [template for _, template, _ in self._patterns]

    def get(self, name: str) -> T:
        if super().__contains__(name):
            return super().get(name)
        for regex, _, resolve in self._patterns:
            match = regex.fullmatch(name)
            if match is not None:
                return resolve(match)
        raise OptionError(
            f"Unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}, "
            f"or a pattern: {', '.join(self.patterns())}."
        )

    def choices(self) -> Any:
        """The registered names as a ``Literal``, or a string matching one of the patterns."""
        from jsonargparse.typing import restricted_string_type

        alternatives = "|".join(f"(?:{regex.pattern})" for regex, _, _ in self._patterns)
        pattern_type = restricted_string_type(
            f"{self.kind.title().replace(' ', '')}Pattern",
            f"^(?:{alternatives})$",
            docstring=f"{self.kind} name of the form {' or '.join(self.patterns())}",
        )
        return Union[super().choices(), pattern_type]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except OptionError:
            return False
        return True
