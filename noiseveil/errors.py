"""Every error that reports bad input as one line (no traceback) in the CLI."""

from noiseveil.crypto.keys import KeyFileError
from noiseveil.data import DataError
from noiseveil.io.png import CiphertextFileError
from noiseveil.schemes.base import SchemeError
from noiseveil.zoo import ZooError

USER_ERRORS = (KeyFileError, DataError, CiphertextFileError, SchemeError, ZooError)
