"""The schema, as sqlite-utils migrations: add new steps at the end, never edit old ones."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("share-image-bot")


@migrations()
def create_tables(db: sqlite_utils.Database) -> None:
    """Grants, share requests, known members, on-call, people and the audit log."""
    db.table("grants").create(
        {
            "id": int,
            "user_id": str,
            "role": str,
            "image_id": str,  # "" means every image
            "granted_by": str,
            "granted_at": str,
        },
        pk="id",
        not_null={"user_id", "role", "image_id", "granted_at"},
    )
    db.table("grants").create_index(["user_id", "role", "image_id"], unique=True)

    db.table("share_requests").create(
        {
            "id": int,
            "action": str,  # share | unshare
            "user_id": str,
            "team_id": str,
            "channel_id": str,
            "response_url": str,
            "image_id": str,
            "member_id": str,
            "reason": str,
            "language": str,
            "state": str,
            "created_at": str,
            "updated_at": str,
            # approval
            "needs_approval": int,
            "approval_reason": str,  # why approval is needed: role | unknown_member
            "expires_at": str,
            "decided_by": str,
            "decided_at": str,
            "deny_reason": str,
            "card_channel": str,
            "card_ts": str,
            # the cloud API's answer
            "sent_at": str,
            "finished_at": str,
            "api_status": int,
            "api_request_id": str,
            "error_kind": str,
            "error_detail": str,
            "member_status": str,
            "member_created_at": str,
            "member_updated_at": str,
            # following a pending share
            "follow_until": str,
            "next_poll_at": str,
            # Slack side
            "parent_channel": str,
            "parent_ts": str,
            "via_response_url": int,
            "announced_state": str,
            "delivery_failures": int,
            # the worker's bookkeeping: when to look at the row next, and who holds it
            "due_at": str,
            "lease_until": str,
        },
        pk="id",
        not_null={"action", "user_id", "image_id", "member_id", "state", "created_at"},
        defaults={"needs_approval": 0, "via_response_url": 0, "delivery_failures": 0},
    )
    db.table("share_requests").create_index(["due_at"])
    db.table("share_requests").create_index(["user_id", "created_at"])
    db.table("share_requests").create_index(["image_id", "member_id", "state"])
    db.table("share_requests").create_index(["state"])

    db.table("known_members").create(
        {"member_id": str, "name": str, "added_by": str, "added_at": str},
        pk="member_id",
    )
    db.table("oncall").create(
        {
            "id": int,
            "user_id": str,
            "starts_at": str,
            "ends_at": str,
            "added_by": str,
            "added_at": str,
        },
        pk="id",
    )
    db.table("oncall").create_index(["starts_at", "ends_at"])
    db.table("people").create(
        {"user_id": str, "language": str, "fetched_at": str},
        pk="user_id",
    )
    db.table("audit").create(
        {"id": int, "at": str, "actor": str, "action": str, "detail": str},
        pk="id",
    )


@migrations()
def add_announce_step(db: sqlite_utils.Database) -> None:
    """How many messages of the current state's announcement went out already."""
    db.table("share_requests").add_column("announce_step", int, not_null_default=0)


SLACK_COLUMNS = (
    "parent_channel",
    "parent_ts",
    "card_channel",
    "card_ts",
    "via_response_url",
    "announced_state",
    "announce_step",
    "delivery_failures",
)


@migrations()
def split_slack_bookkeeping(db: sqlite_utils.Database) -> None:
    """A request's facts stay in share_requests; what Slack was told moves to slack_messages.

    Every existing row keeps its messages: the columns are copied, then dropped.
    """
    db.table("slack_messages").create(
        {
            "request_id": int,
            "parent_channel": str,
            "parent_ts": str,
            "card_channel": str,
            "card_ts": str,
            "via_response_url": int,
            "announced_state": str,
            "announcing_state": str,
            "announce_step": int,
            "delivery_failures": int,
        },
        pk="request_id",
        not_null={"via_response_url", "announce_step", "delivery_failures"},
        defaults={"via_response_url": 0, "announce_step": 0, "delivery_failures": 0},
    )
    db.execute(
        "INSERT INTO slack_messages (request_id, parent_channel, parent_ts, card_channel,"
        " card_ts, via_response_url, announced_state, announcing_state, announce_step,"
        " delivery_failures)"
        " SELECT id, parent_channel, parent_ts, card_channel, card_ts,"
        " coalesce(via_response_url, 0), announced_state, state, coalesce(announce_step, 0),"
        " coalesce(delivery_failures, 0) FROM share_requests"
    )
    db.table("share_requests").transform(drop=set(SLACK_COLUMNS))


@migrations()
def index_members_ignoring_case(db: sqlite_utils.Database) -> None:
    """Duplicate checks and the order per member compare member ids ignoring case."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS share_requests_member_nocase"
        " ON share_requests (image_id, lower(member_id), state)"
    )


@migrations()
def add_share_durations(db: sqlite_utils.Database) -> None:
    """Shares that end by themselves: how long was asked, when it ends, and its removal.

    `duration` is as asked (`7d`; NULL: until removed); `ends_at` is set when the cloud
    answers the add. `removing_at` is recorded before the remove call and the state
    `removed` after it, so a crash in between is reconciled with a read. `extends` links
    an extension to the share it extends; `reminder_ts` is the reminder's message.
    """
    table = db.table("share_requests")
    for column, kind in (
        ("duration", str),
        ("ends_at", str),
        ("remind_at", str),
        ("reminded_at", str),
        ("removing_at", str),
        ("removed_by", str),
        ("removal_result", str),  # removed | gone (already not a member)
        ("extends", int),
        ("extended_by", int),
    ):
        table.add_column(column, kind)
    db.table("slack_messages").add_column("reminder_ts", str)


@migrations()
def add_check_before_posting(db: sqlite_utils.Database) -> None:
    """A worker died while announcing: the next message may have gone out already."""
    db.table("slack_messages").add_column("check_before_posting", int, not_null_default=0)


@migrations()
def create_images(db: sqlite_utils.Database) -> None:
    """The account's image list as the cloud last gave it, and when that was."""
    db.table("images").create(
        {
            "id": str,
            "name": str,
            "os_distro": str,
            "scp_os_version": str,
            "status": str,
            "visibility": str,
            "size": int,  # bytes
            "min_disk": int,  # GB
            "owner": str,
            "owner_account_name": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("images").create_index(["created_at"])
    # One row: when the whole list was last replaced.
    db.table("image_list").create({"id": int, "refreshed_at": str}, pk="id")


@migrations()
def record_grant_team(db: sqlite_utils.Database) -> None:
    """Each grant records the Slack workspace (team id) it holds in.

    Grants made before this step get "", the workspace not known yet: the bot fills in its
    own team (from `auth.test`) at its next start (`Grants.claim_unrecorded`), since it only
    ever served its own workspace. The command line, which asks Slack nothing, leaves "".
    """
    db.table("grants").add_column("team_id", str, not_null_default="")


@migrations()
def add_approval_reminders_and_quorum(db: sqlite_utils.Database) -> None:
    """Approvals that never stall, and images that need two approvals.

    `image_policies` holds an image's approval count (1 or 2). A request records how many
    approvals it needs when it is asked, how many it has (`approvals`, the compare-and-set
    of every approve click) and who gave the first; `approval_reminders` is the last
    reminder stage posted (0: none), `nudge_asked_at` when its asker last pressed Remind
    and `nudge_sent_at` which press was posted. On the Slack side, `waiting_ts` is the
    thread message with the Remind button, `card_approvals` how many approvals the card
    shows, and `reached` who was mentioned and when (JSON).
    """
    db.table("image_policies").create(
        {"image_id": str, "approvals": int, "set_by": str, "set_at": str},
        pk="image_id",
        not_null={"approvals"},
    )
    table = db.table("share_requests")
    table.add_column("approvals_needed", int, not_null_default=1)
    table.add_column("approvals", int, not_null_default=0)
    table.add_column("first_approved_by", str)
    table.add_column("first_approved_at", str)
    table.add_column("approval_reminders", int, not_null_default=0)
    table.add_column("nudge_asked_at", str)
    table.add_column("nudge_sent_at", str)
    slack = db.table("slack_messages")
    slack.add_column("waiting_ts", str)
    slack.add_column("card_approvals", int, not_null_default=0)
    slack.add_column("reached", str)


@migrations()
def add_cloud_members(db: sqlite_utils.Database) -> None:
    """The cloud's own member lists, as the drift reconcile last read them, and its runs.

    `cloud_members` holds one row per image and member (ids alike but for case are one
    member: `member_key` is the id in lower case, `member_id` the cloud's spelling), with
    whether the member had access not through the bot and when that was reported, so a
    restart never reports it again. `reconcile_runs` holds one row: the last run, or the
    one under way (`cursor`: the last image it listed), and what it found.

    On share_requests, `takes_over` names the running share whose end a request moved
    (one share per image and member), and `was_present` marks a request whose member
    already had access, not through the bot, when it was carried out.
    """
    db.table("cloud_members").create(
        {
            "image_id": str,
            "member_key": str,
            "member_id": str,
            "status": str,
            "outside": int,  # 1: present and not through the bot when last listed
            "first_seen_at": str,
            "seen_at": str,
            "gone_at": str,
            "reported_at": str,
        },
        pk=("image_id", "member_key"),
        not_null={"image_id", "member_key", "member_id"},
        defaults={"outside": 0},
    )
    db.table("reconcile_runs").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "cursor": str,
            "images": int,
            "listed": int,
            "outside": int,
            "gone": int,
            "statuses": int,
            "failures": int,
        },
        pk="id",
    )
    table = db.table("share_requests")
    table.add_column("takes_over", int)
    table.add_column("was_present", int, not_null_default=0)


@migrations()
def create_oncall_rota(db: sqlite_utils.Database) -> None:
    """On-call rotas read from where they live (PagerDuty, an iCalendar feed).

    `rota` holds each source's last good read, replaced whole in one transaction, so a
    failed read leaves the previous one; `rota_sources` says when each was last read, last
    tried, and what was wrong. `oncall_schedules` names the PagerDuty schedule an image's
    requests ask; `slack_emails` remembers which Slack user an email is (or that none is).
    """
    db.table("rota").create(
        {
            "id": int,
            "source": str,  # pagerduty | calendar
            "schedule_id": str,  # PagerDuty's schedule; "" for the calendar
            "email": str,
            "name": str,
            "user_id": str,  # the Slack user; "" when Slack knows nobody by that email
            "starts_at": str,  # "" when always on call
            "ends_at": str,  # "" when always on call
        },
        pk="id",
        not_null={"source", "schedule_id", "email", "user_id", "starts_at", "ends_at"},
    )
    db.table("rota").create_index(["source", "starts_at", "ends_at"])
    db.table("rota_sources").create(
        {
            "source": str,
            "read_at": str,  # the last good read ("" never)
            "tried_at": str,
            "error": str,  # why the last try failed ("" when it did not)
            "problems": str,  # JSON list: people Slack does not know, unknown schedules…
        },
        pk="source",
        not_null={"read_at", "tried_at", "error", "problems"},
    )
    db.table("oncall_schedules").create(
        {"image_id": str, "schedule_id": str, "set_by": str, "set_at": str},
        pk="image_id",
    )
    db.table("slack_emails").create(
        {"email": str, "user_id": str, "fetched_at": str},
        pk="email",
    )


@migrations()
def record_made_shared(db: sqlite_utils.Database) -> None:
    """Images the bot set to Shared so that they could have members (they were private).

    `made_shared_at` on the request that did it, for what its thread and notify line say;
    `made_private_at` on the request whose removal set the image back to private; and one
    row per image in `images_made_shared` while the bot holds it Shared, so that it sets an
    image back to private only if it made it Shared itself.
    """
    table = db.table("share_requests")
    table.add_column("made_shared_at", str)
    table.add_column("made_private_at", str)
    db.table("images_made_shared").create(
        {"image_id": str, "request_id": int, "made_at": str}, pk="image_id"
    )


@migrations()
def index_ids_ignoring_case(db: sqlite_utils.Database) -> None:
    """The ack of a share looks up its image and its member by id ignoring case
    (`lower(id) = lower(?)`): an index on each expression, not a scan of the whole table
    (and of the account's whole image list) for every command."""
    db.execute("CREATE INDEX IF NOT EXISTS images_id_nocase ON images (lower(id))")
    db.execute(
        "CREATE INDEX IF NOT EXISTS known_members_id_nocase ON known_members (lower(member_id))"
    )
