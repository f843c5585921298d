"""What an operator can alert on: every metric of the bot, defined here and only here.

The bot is one process, so its figures live in prometheus-client's one registry of that
process. Figures that the database already holds (requests by state, the oldest due
request, approvals waiting) are read from it at scrape time instead, so they are right
after any restart, and whichever process changed them (`serve` and `worker` apart).

Label values are bounded: no user, image, member or request ids; Slack methods, cloud
operations and error codes come from fixed sets or a checked shape.

Each metric's meaning is its help text below; README's metrics table lists them all.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    import httpx

# Counters and histograms without their `_created` twin: one series per figure.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# -- the Slack side ---------------------------------------------------------------------------

COMMAND_KINDS = ("share", "unshare", "list", "status", "help", "admin")
COMMANDS = Counter(
    "share_image_commands_total",
    "/share-image commands, each counted once: kind (share, unshare, list, status, help,"
    " admin) and outcome (queued, approval, duplicate, answered, invalid, refused, error).",
    ["kind", "outcome"],
)
# Slack waits 3 s for an ack: the buckets around it say how close the bot comes.
ACK_SECONDS = Histogram(
    "share_image_ack_seconds",
    "Seconds from a request from Slack (command, click, submission, event) reaching the"
    " app until its ack.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
EVENTS_REFUSED = Counter(
    "share_image_events_refused_total",
    "Requests to /slack/events refused before Bolt saw them (unsigned, forged, stale,"
    " too large, too slow, not a Slack payload), by HTTP status.",
    ["status"],
)

# Slack Web API methods the bot calls; any other is counted as "other".
SLACK_METHODS = frozenset(
    {
        "apps.connections.open",
        "auth.test",
        "chat.getPermalink",
        "chat.postEphemeral",
        "chat.postMessage",
        "chat.update",
        "conversations.history",
        "conversations.info",
        "conversations.join",
        "conversations.replies",
        "users.info",
        "users.lookupByEmail",
        "views.open",
        "views.publish",
        "views.push",
        "views.update",
    }
)
# Slack's error codes are short snake_case words (`channel_not_found`, `ratelimited`).
SLACK_ERROR = re.compile(r"[a-z0-9_]{1,48}")
# Distinct error codes one process labels; past this many, "other" (a bound, not a filter).
SLACK_ERRORS_KEPT = 64
SLACK_CALLS = Counter(
    "share_image_slack_calls_total",
    "Slack Web API calls by method and error: Slack's error code, http_<status>, timeout,"
    ' unreachable, or "ok" when Slack took it.',
    ["method", "error"],
)
DELIVERY_FAILURES = Counter(
    "share_image_delivery_failures_total",
    "Times a message could not be delivered to Slack (tried again later, or refused for"
    " good and skipped).",
)
MESSAGES_DROPPED = Counter(
    "share_image_messages_dropped_total",
    "Messages that will never reach Slack: refused for good, or given up after repeated failures.",
)

# -- the cloud API ------------------------------------------------------------------------------

CLOUD_REQUESTS = Counter(
    "share_image_cloud_requests_total",
    "HTTP requests to the cloud API that got an answer, by operation (add_member,"
    " list_members, show_member, remove_member, show_image, set_visibility, list_images,"
    " versions) and HTTP status.",
    ["operation", "status"],
)
CLOUD_SECONDS = Histogram(
    "share_image_cloud_request_seconds",
    "Seconds one HTTP request to the cloud API took, until its whole answer, by operation.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CLOUD_RETRIES = Counter(
    "share_image_cloud_retries_total",
    "Cloud API requests sent again after a 429, 502, 503, 504, a reset or a timeout.",
)

# -- the worker ---------------------------------------------------------------------------------

# The worker was once a process of its own, started again when it stopped and replaced
# when its memory grew. It is a set of tasks of the bot's one process now: nothing restarts
# or replaces it, and these stay at 0 for the alert rules that name them.
WORKER_RESTARTS = Counter(
    "share_image_worker_restarts_total",
    "Always 0: the worker runs in the bot's one process and is never started again (kept"
    " for alert rules that name it).",
)
WORKER_HANDOVERS = Counter(
    "share_image_worker_handovers_total",
    "Always 0: the worker is never replaced by a fresh one (kept for alert rules that name"
    " it; BOT_WORKER_RECYCLE_MB does nothing now).",
)
APPROVAL_REMINDERS = Counter(
    "share_image_approval_reminders_total",
    "Reminders posted for requests waiting for approval, by audience: on_call, approvers,"
    " admins (the three stages) or asker (the asker's Remind button).",
    ["audience"],
)
WORKER_LAST_LOOP = Gauge(
    "share_image_worker_last_loop_timestamp_seconds",
    "Unix time at which the worker last looked for due requests (every 50 ms while it runs).",
)

DRIFT_KINDS = ("outside", "gone")
DRIFT_FOUND = Counter(
    "share_image_drift_found_total",
    "Differences the reconcile found between the cloud's member lists and the bot's records:"
    " kind outside (a member with access not through the bot, reported once) or gone (a"
    " member the bot added, removed outside it).",
    ["kind"],
)
for _kind in DRIFT_KINDS:
    DRIFT_FOUND.labels(kind=_kind)

_MEMBERS_PATH = re.compile(r"/v1/images/[^/]+/members(/[^/]+)?$")
_IMAGE_PATH = re.compile(r"/v1/images/[^/]+/?$")
_IMAGES_PATH = re.compile(r"/v1/images/?$")
_slack_errors: set[str] = set()
_slack_errors_lock = threading.Lock()


def slack_call(method: str, error: str) -> None:
    """Count one Web API call; `error` is "ok", a Slack error code or a failure's name."""
    if method not in SLACK_METHODS:
        method = "other"
    if not SLACK_ERROR.fullmatch(error):
        error = "other"
    with _slack_errors_lock:
        if error not in _slack_errors:
            if len(_slack_errors) >= SLACK_ERRORS_KEPT:
                error = "other"
            else:
                _slack_errors.add(error)
    SLACK_CALLS.labels(method=method, error=error).inc()


def cloud_operation(method: str, path: str) -> str:
    """The client's operation behind an HTTP request, from its method and path."""
    found = _MEMBERS_PATH.search(path)
    if found is None:
        if method == "PUT" and _IMAGE_PATH.search(path):
            return "set_visibility"
        if method != "GET":
            return "other"
        if _IMAGE_PATH.search(path):
            return "show_image"
        return "list_images" if _IMAGES_PATH.search(path) else "versions"
    if found.group(1):
        return {"GET": "show_member", "DELETE": "remove_member"}.get(method, "other")
    return {"POST": "add_member", "GET": "list_members"}.get(method, "other")


_STARTED = "share_image_started"


def cloud_event_hooks() -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """httpx event hooks (an `AsyncClient`'s) counting and timing every request the cloud
    client sends."""

    async def started(request: httpx.Request) -> None:
        request.extensions[_STARTED] = time.perf_counter()

    async def answered(response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        operation = cloud_operation(request.method, request.url.path)
        status = response.status_code
        CLOUD_REQUESTS.labels(
            operation=operation, status=str(status) if 100 <= status <= 599 else "other"
        ).inc()
        began = request.extensions.get(_STARTED)
        if isinstance(began, float):
            CLOUD_SECONDS.labels(operation=operation).observe(time.perf_counter() - began)

    return {"request": [started], "response": [answered]}


def counting_retries(
    sleep: Callable[[float], Awaitable[None]],
) -> Callable[[float], Awaitable[None]]:
    """The retry policy's (async) sleep, counting each retry it waits for."""

    async def wait(seconds: float) -> None:
        CLOUD_RETRIES.inc()
        await sleep(seconds)

    return wait


def worker_looked() -> None:
    """The worker looked for due requests just now."""
    WORKER_LAST_LOOP.set(time.time())
