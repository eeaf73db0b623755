"""Errors that report bad input as one line (no traceback), and the CLI's exit statuses."""

from noiseveil.crypto.keys import KeyFileError
from noiseveil.data import DataError
from noiseveil.io.png import CiphertextFileError
from noiseveil.schemes.base import SchemeError
from noiseveil.zoo import ZooError

# Errors that concern one file: reported, counted, and a batch goes on.
FILE_ERRORS = (DataError, SchemeError, CiphertextFileError, ZooError)
# Errors that stop a command before it starts (plus every file error of a single-file command).
USER_ERRORS = (KeyFileError, *FILE_ERRORS)

EXIT_OK = 0
EXIT_FAILED_FILES = 1  # some files of a batch failed; the others were processed
EXIT_ERROR = 2  # the command could not run at all (bad key, unknown model, bad arguments)
