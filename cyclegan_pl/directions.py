"""Translation directions between the two image domains A and B.

A direction names which domain's images go in and which come out: ``AtoB`` reads domain A and
writes domain B. CycleGAN translates both ways, pix2pix and CUT translate ``AtoB`` only (pix2pix's
data module swaps the halves of a pair for the other way). Everything that takes a direction
(modules, data modules, commands, metrics) checks it here, with one message.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence, Tuple

from cyclegan_pl.errors import OptionError

Direction = Literal["AtoB", "BtoA"]
#: Both directions, in the order metrics and pages list them.
DIRECTIONS: Tuple[Direction, ...] = ("AtoB", "BtoA")


def check_direction(
    direction: str, allowed: Sequence[str] = DIRECTIONS, what: str = "direction", reason: Optional[str] = None
) -> Direction:
    """``direction`` if it is one of ``allowed``.

    Args:
        direction: the value to check.
        allowed: the directions that are possible here (e.g. those a model translates).
        what: the argument that holds the value, named in the error (the command line writes it
            as its option).
        reason: why only ``allowed`` are possible, for the error (e.g. "a Pix2Pix translates AtoB only").

    Raises:
        OptionError: any other value; the message lists the allowed ones.
    """
    if direction not in allowed:
        choices = " or ".join(repr(value) for value in allowed)
        raise OptionError(f"{what}={direction}: {reason or 'not a direction'}; use {choices}.", option=what)
    return direction  # type: ignore[return-value]


def domains(direction: Direction) -> Tuple[str, str]:
    """The (source, target) domain letters: ``("A", "B")`` for ``AtoB``."""
    check_direction(direction)
    return (direction[0], direction[-1])


def short_name(direction: Direction) -> str:
    """``a2b`` / ``b2a``: how metrics and folders name a direction."""
    source, target = domains(direction)
    return f"{source.lower()}2{target.lower()}"
