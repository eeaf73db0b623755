"""The one exception type of the data subpackage."""

from noiseveil.exceptions import NoiseveilError


class DataError(NoiseveilError):
    """A dataset or image file is missing or malformed; the message is one line for the user."""
