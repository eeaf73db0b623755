"""The CLI's exit statuses.

What the CLI catches needs no list: every user-fixable error derives from
:class:`~noiseveil.exceptions.NoiseveilError` (one-line message); anything else is a bug and
keeps its traceback.
"""

EXIT_OK = 0
EXIT_FAILED_FILES = 1  # some files of a batch failed; the others were processed
EXIT_ERROR = 2  # the command could not run at all (bad key, unknown model, bad arguments)
