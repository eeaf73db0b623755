"""The one base class of noiseveil's errors.

Every error a user can cause or fix (a bad file, key, model id, dataset, ciphertext) derives
from :class:`NoiseveilError` and carries a one-line message, so the CLI and the file pipeline
catch one class: a new module's error needs no list kept by hand. Anything else is a bug and
keeps its traceback.
"""


class NoiseveilError(Exception):
    """Input or state the user can fix; the message is one line, meant to be shown as it is."""
