"""The methods by name: every LightningModule of :mod:`cyclegan_pl.models` registers itself here.

A method's class declares, beside its code, what the rest of the package asks of it (its name,
whether it is paired, what it translates, its networks under the reference code's names, the
model card's sentence, its published models; see
:class:`~cyclegan_pl.models.base.ImageTranslationModule`) and registers itself with
:func:`register_method` where it is defined. Code that must find a method from something it read
(a checkpoint's class path, a saved folder's ``config.json``, the file names of a reference run
folder, a published model's entry) asks :data:`METHODS`, so nothing outside ``models/`` names one.

The registry sits on the ground floor so that weights I/O can look methods up without importing
``models/``; importing :mod:`cyclegan_pl` registers every built-in method.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from cyclegan_pl.registry import Registry

#: The package's public import path, which checkpoints and saved folders record.
PACKAGE = "cyclegan_pl"


class MethodRegistry(Registry[Any]):
    """Method classes by their ``method_name`` (``cyclegan``, ``pix2pix``, ``cut``...)."""

    def classes(self) -> Iterator[Any]:
        """The registered classes, in registration order."""
        return (self.get(name) for name in self)

    def from_class_path(self, class_path: object) -> Optional[Any]:
        """The registered class that ``class_path`` names, or None.

        Accepts what the package writes (``cyclegan_pl.CycleGAN``, :func:`class_path`) and the
        class's defining module (``cyclegan_pl.models.cyclegan.CycleGAN``). Nothing is imported:
        a path read from a file only selects among the registered classes.
        """
        if not isinstance(class_path, str):
            return None
        module, _, name = class_path.rpartition(".")
        for cls in self.classes():
            if name == cls.__name__ and module in (PACKAGE, cls.__module__):
                return cls
        return None

    def from_network_names(self, names: Iterable[str]) -> Optional[Any]:
        """The class whose networks are exactly ``names`` (top-level ``state_dict`` prefixes), or None.

        For checkpoints written before the package recorded its class path in every checkpoint.
        """
        wanted = set(names)
        matches = [cls for cls in self.classes() if set(cls.reference_networks.values()) == wanted]
        return matches[0] if len(matches) == 1 else None


#: Every method, by ``method_name``.
METHODS = MethodRegistry("method")


def register_method(cls: Any) -> Any:
    """Class decorator: add a method to :data:`METHODS` under its ``method_name``."""
    METHODS.add(cls.method_name, cls)
    return cls


def class_path(cls: Any) -> str:
    """How checkpoints and folders name a method class: ``cyclegan_pl.<ClassName>``."""
    return f"{PACKAGE}.{cls.__name__}"
