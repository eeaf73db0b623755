"""The one base class of noiseveil's errors.

Every error a user can cause or fix (a bad file, key, model id, dataset, ciphertext) derives
from :class:`NoiseveilError` and carries a one-line message, so the CLI and the file pipeline
catch one class: a new module's error needs no list kept by hand. Anything else is a bug and
keeps its traceback.

The schemes' errors live here too, beside their base, because the ciphertext container
(:mod:`noiseveil.io.png`), which the schemes build on, raises them as well.
"""


class NoiseveilError(Exception):
    """Input or state the user can fix; the message is one line, meant to be shown as it is."""


class SchemeError(NoiseveilError):
    """Input a scheme cannot process (wrong shape, wrong model...); one-line message."""


class AuthenticationError(SchemeError):
    """Wrong key or tampered ciphertext: nothing is decrypted (raised by the ciphertext's own
    check, :meth:`noiseveil.io.png.Ciphertext.verify`, as well as by the schemes)."""
