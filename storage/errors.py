"""Storage errors: messages meant for a person; the CLI maps them to exit codes."""

from innoverheid.errors import DatabaseError


class StorageError(DatabaseError):
    pass
