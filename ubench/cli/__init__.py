"""The ``ubench`` command line."""
