"""The ``opsloom`` command line."""
