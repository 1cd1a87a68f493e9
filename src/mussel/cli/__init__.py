"""The ``mussel`` command line."""
