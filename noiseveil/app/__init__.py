"""The application layer: the ``noiseveil`` CLI, its commands, the paper reports and what they
share (figures, provenance of results, timing). It uses the library (everything else in
``noiseveil``); the library never imports it (``tests/test_layout.py`` checks)."""
