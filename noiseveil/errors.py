"""What the CLI and the file pipeline catch, and the CLI's exit statuses.

Every user-fixable error derives from :class:`~noiseveil.exceptions.NoiseveilError` (one-line
message), so nothing here lists modules by hand.
"""

from noiseveil.exceptions import NoiseveilError

# Errors that concern one file: reported, counted, and a batch goes on.
FILE_ERRORS = (NoiseveilError,)
# Errors that stop a command before it starts (a bad key, an unknown model), shown as one line.
USER_ERRORS = (NoiseveilError,)

EXIT_OK = 0
EXIT_FAILED_FILES = 1  # some files of a batch failed; the others were processed
EXIT_ERROR = 2  # the command could not run at all (bad key, unknown model, bad arguments)
