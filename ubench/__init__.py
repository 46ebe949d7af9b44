"""ubench: a benchmark and evaluation suite for machine unlearning in diffusion models.

Importing the package is cheap (no torch); the CLI is ``ubench.cli.main``, the contracts between
methods, tasks and metrics are in ``ubench.api``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ubench")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
