"""The ``sern`` command line: thin sub-commands over the packages below it."""
