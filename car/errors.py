"""Errors that reach the user as one line: what is wrong, where, and the fix."""


class CARError(Exception):
    """Base of the errors the command line prints as one line and exits 2 on."""


class DataError(CARError, ValueError):
    """Input that cannot be used at all; the message names file, place and fix."""


class ConfigError(CARError, ValueError):
    """A config value or combination that cannot work; the message names the key and fix."""


def is_number(value: object) -> bool:
    """An int or float from a config, not a bool (YAML's true is an int to Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
