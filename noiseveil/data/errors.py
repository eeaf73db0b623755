"""The one exception type of the data subpackage."""


class DataError(Exception):
    """A dataset or image file is missing or malformed; the message is one line for the user."""
