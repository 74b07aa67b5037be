"""Errors the command line turns into friendly messages and exit codes (interface.md).

Library code raises these; only the CLI edge formats them (the sqlite-utils way).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_PARTIAL = 1  # the job ran but part of it failed
EXIT_USAGE = 2  # bad usage, bad config, bad input file


class InnoverheidError(Exception):
    """Base for errors with a message meant for a person."""

    exit_code = EXIT_USAGE


@dataclass
class Problem:
    key: str | None
    line: int | None
    message: str
    fix: str

    def render(self) -> str:
        where = []
        if self.key:
            where.append(f"key '{self.key}'")
        if self.line:
            where.append(f"line {self.line}")
        head = ", ".join(where) or "the file"
        return f"{head}: {self.message}; fix: {self.fix}"


class ConfigError(InnoverheidError):
    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s) in the configuration:"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))


class UsageError(InnoverheidError):
    """Bad invocation or bad input file."""


class InputFileError(UsageError):
    pass


class DatabaseError(InnoverheidError):
    """The database cannot be opened or is in a state we cannot work with."""


class ModelFileError(InnoverheidError):
    """A model file is missing, foreign or tampered with."""
