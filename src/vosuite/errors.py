"""Errors that the CLI turns into a one-line message and exit status 2."""


class VosuiteError(Exception):
    """A user-facing error: bad input, a missing file, an inconsistent dataset."""


class InputError(VosuiteError):
    """An input file or argument is missing, unreadable or inconsistent."""
