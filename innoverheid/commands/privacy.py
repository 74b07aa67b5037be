"""Commands: filled in by their issue."""

from innoverheid.cli import app  # noqa: F401
