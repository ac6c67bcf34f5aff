"""The ``loopwright`` command line."""
