"""The one exception type of the data subpackage."""

from noiseveil.exceptions import NoiseveilError


class DataError(NoiseveilError):
    """A dataset or image file is missing or malformed; the message is one line for the user."""


class DataNotFound(DataError):
    """A dataset's files are not in the folder it was looked for in."""
