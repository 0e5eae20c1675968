"""The errors that mean "your input is wrong" (CLI exit code 2), as opposed to bugs (exit 1).

Every input error names the bad key, file or value, and the fix where there is one. They
subclass the builtin type callers already catch (``ValueError``, ``KeyError``,
``FileNotFoundError``, ``FileExistsError``), so only their *raynas* type decides the exit code:
a ``KeyError`` from a bug stays a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ExistingOutputError",
    "InputError",
    "InvalidValueError",
    "MissingInputError",
    "UnknownKeyError",
    "closest",
]


class InputError(Exception):
    """Bad input: a config, an architecture, a checkpoint, a dataset or an experiment folder."""


class InvalidValueError(InputError, ValueError):
    """A value of the wrong type or outside its range."""


class UnknownKeyError(InputError, KeyError):
    """A key that is not one of the valid ones (the message suggests the closest)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the user named (or that an experiment needs) does not exist."""


class ExistingOutputError(InputError, FileExistsError):
    """An output that exists already and would be overwritten."""


def closest(word: str, valid: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest valid word, or an empty string."""
    match = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
