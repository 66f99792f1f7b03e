"""Errors a user can cause. Each carries one sentence meant for the user.

The UI shows ``str(err)`` in an inline note or dialog; the CLI prints it as one line on
stderr and exits non-zero. Anything that is not a LabError is a bug in the lab.
"""
import re


class LabError(Exception):
    """An error the user can act on; the message says what happened and what to do."""


class ModelLoadError(LabError):
    """The model reference cannot be resolved or loaded."""


class InputError(LabError):
    """Bad text, settings or arguments."""


class DeviceError(LabError):
    """The device cannot do what was asked (out of memory, driver failure, missing GPU)."""


class Cancelled(LabError):
    """The user cancelled a long job."""

    def __init__(self, message: str = "Cancelled."):
        super().__init__(message)


def first_line(err) -> str:
    """The first non-empty line of an error or a message (colour codes removed, at most 300
    characters): what a one-sentence message quotes from a library's long report."""
    for line in str(err).splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if line:
            return line[:300]
    return type(err).__name__ if isinstance(err, BaseException) else "unknown error"
