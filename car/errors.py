"""Errors that reach the user as one line: what is wrong, where, and the fix."""

import errno


class CARError(Exception):
    """Base of the errors the command line prints as one line and exits 2 on."""


class DataError(CARError, ValueError):
    """Input that cannot be used at all; the message names file, place and fix."""


class ConfigError(CARError, ValueError):
    """A config value or combination that cannot work; the message names the key and fix."""


def is_number(value: object) -> bool:
    """An int or float from a config, not a bool (YAML's true is an int to Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def error_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name if it has none."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def os_error_line(err: OSError) -> str:
    """One line for a file-system error the code did not turn into a DataError (an output folder
    that cannot be made, a full disk): the path, the system's reason and the fix."""
    # A failed rename of a finished temporary file into place names the destination second.
    path = err.filename2 if err.filename2 is not None else err.filename
    where = f"{path}: " if path is not None else ""
    fix = ("free disk space or write the outputs elsewhere" if err.errno == errno.ENOSPC
           else "check that the path's folders exist or can be made and are writable")
    return f"{where}{err.strerror or err}; {fix}"
