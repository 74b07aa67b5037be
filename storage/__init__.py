"""Storage: the schema, the database setup and the queries the stages need."""

from storage.db import Database, open_database
from storage.errors import StorageError

__all__ = ["Database", "open_database", "StorageError"]
