"""Who changed grants, known members and on-call, and when."""

from __future__ import annotations

from storage.database import Database, stamp


class AuditLog:
    """The audit table: one row per administrative change."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, actor: str, action: str, detail: str) -> None:
        """Write one entry."""
        now = stamp(self._database.now())
        self._database.write(
            lambda db: db.table("audit").insert(
                {"at": now, "actor": actor, "action": action, "detail": detail}
            )
        )

    def recent(self, limit: int = 50) -> list[dict[str, str]]:
        """The newest entries first."""
        return self._database.read(
            lambda db: list(db.table("audit").rows_where(order_by="id desc", limit=limit))
        )
