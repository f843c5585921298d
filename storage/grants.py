"""Who may do what: roles per Slack user, for every image or for one."""

from __future__ import annotations

import sqlite_utils

from bot.sharing.values import ALL_IMAGES, Grant, Role
from storage.database import Database, stamp

__all__ = ["ALL_IMAGES", "Grants"]


class Grants:
    """The grants table."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def grant(
        self, user_id: str, role: Role, image_id: str = ALL_IMAGES, *, by: str, team_id: str = ""
    ) -> bool:
        """Give `role` in the workspace `team_id`; False when the user had it already."""

        def work(db: sqlite_utils.Database) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO grants"
                " (user_id, role, image_id, granted_by, granted_at, team_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [user_id, role.value, image_id, by, stamp(self._database.now()), team_id],
            )
            return cursor.rowcount == 1

        return self._database.write(work)

    def claim_unrecorded(self, team_id: str) -> int:
        """Record `team_id` on the grants that have no workspace yet; how many."""
        return self._database.write(
            lambda db: (
                db.execute("UPDATE grants SET team_id = ? WHERE team_id = ''", [team_id]).rowcount
            )
        )

    def revoke(
        self, user_id: str, role: Role, image_id: str = ALL_IMAGES, *, keep_last_admin: bool = False
    ) -> bool | None:
        """Take `role` away; False when the user did not have it.

        With `keep_last_admin`, the last admin for all images keeps the role and the answer
        is None: the check and the removal are one transaction, so two admins revoking
        each other at once cannot leave nobody.
        """

        def work(db: sqlite_utils.Database) -> bool | None:
            held = db.execute(
                "SELECT 1 FROM grants WHERE user_id = ? AND role = ? AND image_id = ?",
                [user_id, role.value, image_id],
            ).fetchone()
            if held is None:
                return False
            if keep_last_admin and role is Role.ADMIN and image_id == ALL_IMAGES:
                others = db.execute(
                    "SELECT count(*) FROM grants WHERE role = 'admin' AND image_id = ''"
                    " AND user_id != ?",
                    [user_id],
                ).fetchone()[0]
                if others == 0:
                    return None
            db.execute(
                "DELETE FROM grants WHERE user_id = ? AND role = ? AND image_id = ?",
                [user_id, role.value, image_id],
            )
            return True

        return self._database.write(work)

    def roles(self, user_id: str, image_id: str) -> set[Role]:
        """The roles `user_id` holds for `image_id` (its own grants and all-image ones)."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT role FROM grants WHERE user_id = ? AND image_id IN ('', ?)",
                [user_id, image_id],
            ).fetchall()
        )
        return {Role(row[0]) for row in rows}

    def asking(
        self, user_id: str, image_id: str, member_id: str
    ) -> tuple[set[Role], str | None, int]:
        """What an ask is judged by, read in ONE statement (the ack path's): the roles
        `user_id` holds for `image_id` (as `roles`), the registered name of `member_id`
        (as `KnownMembers.name`: None when nobody registered it) and the approvals a share
        of `image_id` needs (as `ImagePolicies.approvals`: 1 unless set)."""
        roles, name, approvals = self._database.read(
            lambda db: db.execute(
                "SELECT"
                " (SELECT group_concat(role, ' ') FROM grants"
                "  WHERE user_id = :user AND image_id IN ('', :image)),"
                " (SELECT name FROM known_members WHERE lower(member_id) = lower(:member)"
                "  ORDER BY member_id = :member DESC LIMIT 1),"
                " (SELECT approvals FROM image_policies WHERE image_id = :image)",
                {"user": user_id, "image": image_id, "member": member_id},
            ).fetchone()
        )
        return (
            {Role(role) for role in (roles or "").split()},
            None if name is None else str(name),
            int(approvals) if approvals is not None else 1,
        )

    def all(self) -> list[Grant]:
        """Every grant, by user then role."""
        rows = self._database.read(
            lambda db: list(db.table("grants").rows_where(order_by="user_id, role, image_id"))
        )
        return [
            Grant(
                user_id=row["user_id"],
                role=Role(row["role"]),
                image_id=row["image_id"],
                granted_by=row["granted_by"] or "",
                granted_at=row["granted_at"],
                team_id=row["team_id"],
            )
            for row in rows
        ]

    def holders(self, *roles: Role, image_id: str = ALL_IMAGES) -> list[str]:
        """User ids holding any of `roles` for all images (or for `image_id` too)."""
        marks = ", ".join("?" for _ in roles)
        rows = self._database.read(
            lambda db: db.execute(
                f"SELECT DISTINCT user_id FROM grants WHERE role IN ({marks})"
                " AND image_id IN ('', ?) ORDER BY user_id",
                [*(role.value for role in roles), image_id],
            ).fetchall()
        )
        return [row[0] for row in rows]

    def images_decided_by(self, user_id: str) -> set[str] | None:
        """Images `user_id` may approve: None for every image, else the set."""
        rows = self._database.read(
            lambda db: db.execute(
                "SELECT image_id FROM grants WHERE user_id = ? AND role IN ('approver', 'admin')",
                [user_id],
            ).fetchall()
        )
        images = {row[0] for row in rows}
        return None if ALL_IMAGES in images else images
