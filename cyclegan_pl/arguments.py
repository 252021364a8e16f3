"""Arguments checked against a typed signature, the way the command line checks them.

The command line parses every option with jsonargparse against the typed ``__init__`` of a
class or the signature of a command. Options that arrive another way, read from a file the
package did not write (a checkpoint's hyperparameters, a ``config.json`` of a model folder), go
through the same check here (:func:`checked_arguments`) before anything is built from them, and
every problem is one line (:func:`concise_parse_error`).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping

from cyclegan_pl.errors import OptionError


def _readable_pattern(regex: str) -> str:
    """A pattern type's regex as a user reads it: ``(?P<n_blocks>\\d+)`` becomes ``<n_blocks>``."""
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", regex.strip().lstrip("^").rstrip("$"))
    text = text.replace("(?:", "").replace(")", "")
    return ", ".join(part for part in text.split("|") if part)


def concise_parse_error(message: str) -> str:
    """One line from a jsonargparse error: the option, the value, what was expected; no noise."""
    lines = [line.strip().lstrip("- ").strip() for line in str(message).strip().splitlines() if line.strip()]
    keys = list(dict.fromkeys(re.findall(r'Parser key "([^"]+)"', str(message))))
    given = next(
        (
            line.split("value:", 1)[1].strip()
            for line in lines
            if re.match(r"(Given|.*Got) value:", line) and "NestedArg(" not in line
        ),
        None,
    )
    choices: List[str] = []
    types: List[str] = []
    for line in lines:
        literal = re.search(r"Expected a typing\.Literal\[(.*?)\]", line)
        pattern = re.search(r"does not match regular expression (.+)$", line)
        if literal:
            choices += [c.strip().strip("'\"") for c in literal.group(1).split(",")]
        elif pattern:
            choices.append(_readable_pattern(pattern.group(1)))
        types += re.findall(r"Expected a <class '(?:\w+\.)*(\w+)'>", line)
    option = ".".join(k for k in keys if k != "init_args")
    value = f" {given!r}" if given is not None else ""
    if option and choices:
        return f"{option}{value} is not one of: {', '.join(dict.fromkeys(choices))}"
    if option and types:
        expected = " or ".join("None" if t == "NoneType" else t for t in dict.fromkeys(types))
        return f"{option}{value} is not a valid {expected}"
    useful = [
        line
        for line in lines
        if line.startswith(("Parser key", "Expected", "Not of type", "Unrecognized", "Key ", "Configuration check"))
        or "does not" in line
        or "must be" in line
        or "not a valid" in line
    ]
    chosen = useful or lines[:3]
    return " ".join(dict.fromkeys(chosen))


def checked_arguments(target: Callable[..., Any], values: Mapping[str, Any]) -> Dict[str, Any]:
    """``values`` checked against the typed arguments of ``target`` (a class or a function).

    Each value must have its argument's type as the command line would take it, except that a
    string is never read as a number or a boolean: the values come from JSON or a pickle, where
    ``"8"`` is text, not the number 8.

    Args:
        target: the class whose ``__init__`` (with its bases' through ``**kwargs``) or the function
            whose signature declares the arguments.
        values: the arguments by name.

    Returns:
        The given arguments (only those) as the parser read them, as plain Python values.

    Raises:
        OptionError: an unknown argument or a value of another type; one line naming it.
    """
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    if isinstance(target, type):
        parser.add_class_arguments(target)
    else:
        parser.add_function_arguments(target)
    try:
        parsed = parser.parse_object(dict(values)).as_dict()
    except Exception as error:  # noqa: BLE001 - jsonargparse reports every refusal its own way
        raise OptionError(concise_parse_error(str(error)) or type(error).__name__) from None
    checked = {}
    for name, value in values.items():
        if _text_read_as_other(value, parsed[name]):
            raise OptionError(f"{name} {value!r} is text where {_kind(parsed[name])} is expected", option=name)
        checked[name] = _plain(parsed[name])
    return checked


def _text_read_as_other(given: Any, parsed: Any) -> bool:
    if isinstance(given, str):
        return not isinstance(parsed, str)
    if isinstance(given, (list, tuple)) and isinstance(parsed, (list, tuple)) and len(given) == len(parsed):
        return any(_text_read_as_other(a, b) for a, b in zip(given, parsed, strict=True))
    return False


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", tuple: "a list", list: "a list"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _plain(value: Any) -> Any:
    """Builtin types only (jsonargparse returns subclasses of str for pattern types), so that what
    is stored again (a checkpoint, a config) loads without running code."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


__all__ = ["checked_arguments", "concise_parse_error"]
