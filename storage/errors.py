"""The storage layer's one error: the database could not be read or written.

    StorageError              the database could not be read or written

It says what failed and where (the path, SQLite's message); never a value that was stored.
"""

from __future__ import annotations


class StorageError(Exception):
    """The database could not be read or written."""
