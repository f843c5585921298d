"""`GET /metrics`: what an operator alerts on moves by exactly what happened.

Every test scrapes the endpoint over HTTP and reads it with prometheus-client's own
parser. In the test process the figures live in memory, shared by every test, so these
tests compare before and after; the real `python -m bot` (HTTP mode, Socket Mode with
METRICS_PORT) is one process with one registry, starting from zero.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.metrics_page import MetricsPage
from bot.scp.sandbox import Fault, Sandbox
from bot.server import Listening, make_web_app
from bot.sharing.request import RequestState
from bot.sharing.values import Role
from storage.errors import StorageError
from tests import test_run_modes
from tests.fakes.slack import FakeSlack, SlackSender
from tests.harness import IMAGE, MEMBER, SIGNING_SECRET, BotHarness
from tests.test_run_modes import (
    SHARER,
    START_TIMEOUT,
    BotProcess,
    children_of,
    command_line,
    free_port,
    wait_healthy,
)

# The real bot's fixtures, as test_run_modes starts it.
bot_env = test_run_modes.bot_env
start_bot = test_run_modes.start_bot

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

CONTRACT = {
    "share_image_commands": "counter",
    "share_image_ack_seconds": "histogram",
    "share_image_requests": "gauge",
    "share_image_oldest_due_seconds": "gauge",
    "share_image_approvals_waiting": "gauge",
    "share_image_cloud_requests": "counter",
    "share_image_cloud_request_seconds": "histogram",
    "share_image_cloud_retries": "counter",
    "share_image_slack_calls": "counter",
    "share_image_delivery_failures": "counter",
    "share_image_worker_restarts": "counter",
}
CLOUD = "share_image_cloud_requests_total"
MEMBERS = ("member-one", "member-two", "member-three")


def parse(text: str) -> tuple[dict[str, Any], Samples]:
    """The families (by name) and every sample (by name and labels) of an exposition."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples: Samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    return families, samples


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)[1]


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, _labels(**labels)), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def moved(before: Samples, after: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter-like sample that changed, and by how much (histogram buckets left out)."""
    return {
        key: after.get(key, 0.0) - before.get(key, 0.0)
        for key in set(before) | set(after)
        if after.get(key, 0.0) != before.get(key, 0.0) and key[0].endswith(("_total", "_count"))
    }


# -- the bot in the test process --------------------------------------------------------------


@pytest.fixture
def metrics_url(make_bot: Callable[..., BotHarness]) -> Iterator[tuple[BotHarness, str]]:
    """A bot sharing with anyone, and a /metrics that never serves a cached answer."""
    bot = make_bot(SHARE_UNKNOWN_MEMBERS="direct")
    bot.grant("U1", Role.SHARER)
    page = MetricsPage(bot.services.requests, max_age=0)
    listening = Listening(make_web_app(None, bot.database, bot.settings, page=page))
    url = f"http://127.0.0.1:{bot.call(listening.start(0, '127.0.0.1'))}/metrics"
    # The tests count from here: the harness has waited for the worker's start-up work
    # (the first image-list refresh and rota read); the version read is the runtime's, not
    # the worker's, and never happens in the harness.
    yield bot, url
    bot.call(listening.stop())


def test_metrics_need_no_signature_and_name_every_contract_with_its_help(bot: BotHarness) -> None:
    response = httpx.get(f"{bot.url}/metrics", timeout=10)  # no Slack headers at all

    assert response.status_code == 200
    families, samples = parse(response.text)
    for name, kind in CONTRACT.items():
        assert families[name].type == kind, name
        assert len(families[name].documentation) > 20, name
    for family in families.values():
        assert family.documentation, family.name
    build = {"version": metadata.version("share-image-bot"), "python": platform.python_version()}
    assert value(samples, "share_image_build_info", **build) == 1
    assert value(samples, "share_image_database_up") == 1
    assert {labels for (name, labels) in samples if name == "share_image_requests"} == {
        (("state", state.value),) for state in RequestState
    }
    assert httpx.head(f"{bot.url}/metrics", timeout=10).status_code == 200
    assert httpx.post(f"{bot.url}/metrics", timeout=10).status_code == 404


def test_three_commands_count_three_and_nothing_else(
    metrics_url: tuple[BotHarness, str], sandbox: Sandbox
) -> None:
    bot, url = metrics_url
    before = scrape(url)

    for member in MEMBERS:
        assert bot.ack_text(f"{IMAGE} {member}").startswith("On it")
    for number in (1, 2, 3):
        bot.wait_state("pending", number)
    after = scrape(url)

    change = moved(before, after)
    commands = {k: v for k, v in change.items() if k[0] == "share_image_commands_total"}
    assert commands == {
        ("share_image_commands_total", (("kind", "share"), ("outcome", "queued"))): 3
    }
    assert change[("share_image_ack_seconds_count", ())] == 3
    reads = {"show_image", "list_images"}  # the image check before a share, cached
    cloud = {
        k: v
        for k, v in change.items()
        if k[0].startswith("share_image_cloud") and not reads & {label for _, label in k[1]}
    }
    assert cloud == {
        ("share_image_cloud_requests_total", (("operation", "add_member"), ("status", "200"))): 3,
        ("share_image_cloud_request_seconds_count", (("operation", "add_member"),)): 3,
    }
    assert value(after, "share_image_requests", state="pending") == 3
    assert value(after, "share_image_requests", state="queued") == 0
    assert value(after, "share_image_oldest_due_seconds") == 0
    # Each message the worker posted, counted once as Slack took it.
    posted = len(bot.slack.calls("chat.postMessage"))
    assert (
        change[("share_image_slack_calls_total", (("error", "ok"), ("method", "chat.postMessage")))]
        == posted
    )
    assert "share_image_delivery_failures_total" not in {k[0] for k in change}


def test_a_503_retried_counts_one_retry_and_both_answers(
    metrics_url: tuple[BotHarness, str], sandbox: Sandbox
) -> None:
    bot, url = metrics_url
    sandbox.inject(Fault.answer(503, method="POST"))
    before = scrape(url)

    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    after = scrape(url)

    change = moved(before, after)
    assert change[("share_image_cloud_retries_total", ())] == 1
    cloud = {
        k: v
        for k, v in change.items()
        if k[0] == "share_image_cloud_requests_total" and ("operation", "show_image") not in k[1]
    }
    assert cloud == {
        ("share_image_cloud_requests_total", (("operation", "add_member"), ("status", "503"))): 1,
        ("share_image_cloud_requests_total", (("operation", "add_member"), ("status", "200"))): 1,
    }
    assert change[("share_image_cloud_request_seconds_count", (("operation", "add_member"),))] == 2


def test_a_slack_refusal_is_counted_with_its_error_code(
    make_bot: Callable[..., BotHarness], slack: FakeSlack
) -> None:
    bot = make_bot(SHARE_NOTIFY_CHANNEL="CNOTIFY")
    bot.grant("U1", Role.SHARER)
    bot.services.members.add(MEMBER, "QA account", by="test")
    slack.not_in_channel.add("CNOTIFY")
    page = MetricsPage(bot.services.requests, max_age=0)
    before = parse(page.render().decode())[1]

    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.wait_state("pending")
    after = scrape(f"{bot.url}/metrics")  # the harness's own page: first scrape, fresh

    change = moved(before, after)
    refused = _labels(method="chat.postMessage", error="not_in_channel")
    assert change[("share_image_slack_calls_total", refused)] == 1
    # The notify line is refused for good: one failed delivery, one message dropped.
    assert change[("share_image_delivery_failures_total", ())] == 1
    assert change[("share_image_messages_dropped_total", ())] == 1


def test_each_command_is_counted_once_by_kind_and_outcome(
    team: BotHarness,
) -> None:
    page = MetricsPage(team.services.requests, max_age=0)
    before = parse(page.render().decode())[1]

    team.ack_text(f"{IMAGE} not/a/member", user="USHARE")  # invalid
    team.ack_text("help", user="USHARE")
    team.ack_text("admin grants", user="USHARE")  # not an admin
    team.ack_text("admin grants", user="UADMIN")
    team.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")  # needs an approver
    team.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")  # the same again
    team.ack_text("status", user="UREQ")
    team.ack_text(f"unshare {IMAGE} {MEMBER}", user="UNOBODY")  # no role at all
    after = parse(page.render().decode())[1]

    commands = {
        dict(labels)["kind"] + "/" + dict(labels)["outcome"]: v
        for (name, labels), v in moved(before, after).items()
        if name == "share_image_commands_total"
    }
    assert commands == {
        "share/invalid": 1,
        "help/answered": 1,
        "admin/refused": 1,
        "admin/answered": 1,
        "share/approval": 1,
        "share/duplicate": 1,
        "status/answered": 1,
        "unshare/refused": 1,
    }
    assert moved(before, after)[("share_image_ack_seconds_count", ())] == 8
    assert value(after, "share_image_approvals_waiting") == 1
    assert value(after, "share_image_requests", state="awaiting_approval") == 1


def test_the_oldest_due_request_shows_how_long_the_worker_is_behind(
    metrics_url: tuple[BotHarness, str],
) -> None:
    bot, url = metrics_url
    bot.stop_worker()
    bot.ack_text(f"{IMAGE} {MEMBER}")
    bot.clock.advance(seconds=400)

    behind = scrape(url)

    assert 400 <= value(behind, "share_image_oldest_due_seconds") < 460
    assert value(behind, "share_image_requests", state="queued") == 1
    bot.start_worker()
    bot.wait_state("pending")
    assert value(scrape(url), "share_image_oldest_due_seconds") == 0


def test_a_database_gone_is_a_zero_not_a_failed_scrape(
    metrics_url: tuple[BotHarness, str],
) -> None:
    bot, url = metrics_url
    bot.stop_worker()
    os.rename(bot.settings.DATABASE_PATH, f"{bot.settings.DATABASE_PATH}.moved")
    try:
        samples = scrape(url)
    finally:
        os.rename(f"{bot.settings.DATABASE_PATH}.moved", bot.settings.DATABASE_PATH)

    assert value(samples, "share_image_database_up") == 0
    assert not any(name == "share_image_requests" for name, _ in samples)
    assert ("share_image_cloud_retries_total", ()) in samples


def test_a_flood_of_scrapes_reads_the_database_once_per_max_age() -> None:
    class Figures:
        calls = 0

        def tally(self) -> Any:
            Figures.calls += 1
            raise StorageError("not needed here")

    now = [100.0]
    page = MetricsPage(Figures(), max_age=1.0, clock=lambda: now[0])

    first = page.render()
    metrics.CLOUD_RETRIES.inc()
    again = [page.render() for _ in range(50)]
    now[0] += 1.0
    later = page.render()

    assert Figures.calls == 2
    # The process's own figures are always current (reading them costs microseconds).
    retries = ("share_image_cloud_retries_total", ())
    counted = parse(first.decode())[1][retries] + 1
    assert all(parse(answer.decode())[1][retries] == counted for answer in [*again, later])


# -- bounded labels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", f"/v1/images/{IMAGE}/members", "add_member"),
        ("GET", f"/v1/images/{IMAGE}/members", "list_members"),
        ("GET", f"/v1/images/{IMAGE}/members/{MEMBER}", "show_member"),
        ("DELETE", f"/v1/images/{IMAGE}/members/{MEMBER}", "remove_member"),
        ("GET", "/", "versions"),
        ("GET", "/proxy/prefix/v1/images/x/members/y", "show_member"),
        ("PUT", f"/v1/images/{IMAGE}/members", "other"),
        ("PUT", f"/v1/images/{IMAGE}", "set_visibility"),
        ("GET", f"/v1/images/{IMAGE}", "show_image"),
        ("DELETE", f"/v1/images/{IMAGE}", "other"),
        ("POST", "/", "other"),
    ],
)
def test_cloud_operations_are_named_from_a_fixed_set(
    method: str, path: str, operation: str
) -> None:
    assert metrics.cloud_operation(method, path) == operation


def test_slack_labels_stay_bounded() -> None:
    before = parse(MetricsPage(_NoDatabase(), max_age=0).render().decode())[1]

    metrics.slack_call("chat.postMessage", "not_in_channel")
    metrics.slack_call("made.up", "ok")
    metrics.slack_call("users.info", "Not A <Code> " + "x" * 100)

    after = parse(MetricsPage(_NoDatabase(), max_age=0).render().decode())[1]
    change = {
        (dict(k[1])["method"], dict(k[1])["error"]): v
        for k, v in moved(before, after).items()
        if k[0] == "share_image_slack_calls_total"
    }
    assert change == {
        ("chat.postMessage", "not_in_channel"): 1,
        ("other", "ok"): 1,
        ("users.info", "other"): 1,
    }


class _NoDatabase:
    def tally(self) -> Any:
        raise StorageError("no database here")


# -- the real bot: one process, one registry ----------------------------------------------


def wait_for(bot: BotProcess, url: str, check: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until `check` holds (the worker works in its own time); the samples then."""
    found: list[Samples] = []

    def ready() -> bool:
        try:
            found[:] = [scrape(url)]
        except httpx.TransportError:
            return False
        return check(found[0])

    bot.wait_until(ready, what, START_TIMEOUT)
    return found[0]


def test_http_mode_counts_the_slack_side_and_the_worker_in_one_registry(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    started = time.time()
    bot = start_bot()
    wait_healthy(bot)
    url = f"{bot.url}/metrics"
    sandbox.inject(Fault.answer(503, method="POST"))
    slack.fail("users.info", "user_not_found")

    with SlackSender(f"{bot.url}/slack/events", SIGNING_SECRET, fake=slack) as sender:
        forged = sender.command(f"{IMAGE} {MEMBER}", user_id=SHARER, signature="v0=" + "0" * 64)
        acks = [sender.command(f"{IMAGE} {member}", user_id=SHARER) for member in MEMBERS]
    assert forged.status_code == 401
    assert [a.status_code for a in acks] == [200, 200, 200]

    samples = wait_for(
        bot,
        url,
        lambda s: (
            value(s, "share_image_requests", state="pending") == 3
            and value(s, "share_image_slack_calls_total", method="chat.postMessage", error="ok")
            >= 6
        ),
        "three shares pending, their replies posted",
    )
    # The Slack side's figures...
    assert {
        labels: v for (name, labels), v in samples.items() if name == "share_image_commands_total"
    } == {(("kind", "share"), ("outcome", "queued")): 3}
    assert value(samples, "share_image_ack_seconds_count") == 3
    assert value(samples, "share_image_events_refused_total", status="401") == 1
    # ...and the worker's, in the same registry of the same process.
    assert value(samples, "share_image_cloud_retries_total") == 1
    assert {
        labels: v
        for (name, labels), v in samples.items()
        if name == "share_image_cloud_requests_total" and dict(labels)["operation"] == "add_member"
    } == {
        (("operation", "add_member"), ("status", "503")): 1,
        (("operation", "add_member"), ("status", "200")): 3,
    }
    assert (
        value(samples, "share_image_slack_calls_total", method="users.info", error="user_not_found")
        == 1
    )
    assert value(samples, "share_image_worker_restarts_total") == 0
    assert value(samples, "share_image_worker_last_loop_timestamp_seconds") >= started
    assert value(samples, "share_image_oldest_due_seconds") == 0
    assert children_of(bot.pid) == [], [command_line(p) for p in children_of(bot.pid)]
    assert bot.terminate_and_wait() == 0


def test_socket_mode_serves_metrics_on_metrics_port(
    start_bot: Callable[..., BotProcess], slack: FakeSlack, sandbox: Sandbox
) -> None:
    port = free_port()
    bot = start_bot(SLACK_APP_TOKEN=slack.app_token, METRICS_PORT=str(port))
    bot.wait_until(lambda: slack.socket_connection_count > 0, "a connection", START_TIMEOUT)
    slack.wait_socket_connected()
    url = f"http://127.0.0.1:{port}/metrics"
    sender = SlackSender("http://127.0.0.1:9/unused", SIGNING_SECRET, fake=slack)

    for member in MEMBERS:
        ack = sender.socket_command(slack, f"{IMAGE} {member}", user_id=SHARER, timeout=10)
        assert ack["payload"]["text"].startswith("On it")

    samples = wait_for(
        bot,
        url,
        lambda s: value(s, "share_image_requests", state="pending") == 3,
        "three shares pending",
    )
    assert value(samples, "share_image_commands_total", kind="share", outcome="queued") == 3
    assert total(samples, "share_image_commands_total") == 3
    assert value(samples, "share_image_ack_seconds_count") == 3
    assert (
        value(samples, "share_image_cloud_requests_total", operation="add_member", status="200")
        == 3
    )
    assert httpx.get(f"http://127.0.0.1:{port}/slack/events", timeout=5).status_code == 404
    assert [e["port"] for e in bot.log_lines() if e.get("message") == "serving metrics"] == [port]
    assert bot.terminate_and_wait() == 0


def test_slack_calls_of_a_listener_are_counted_too(team: BotHarness, slack: FakeSlack) -> None:
    team.ack_text(f"{IMAGE} {MEMBER}", user="UREQ")
    team.wait_state("awaiting_approval")
    posted = team.parent("CAPPROVE")
    page = MetricsPage(team.services.requests, max_age=0)
    before = parse(page.render().decode())[1]

    assert team.sender.click(posted, "deny", user_id="UAPP2").status_code == 200
    opened = ("share_image_slack_calls_total", _labels(method="views.open", error="ok"))
    # Counted once slack-sdk has read Slack's answer, a moment after the fake saw the call.
    after = slack.wait_for(
        lambda: (
            (now := parse(page.render().decode())[1]).get(opened, 0) > before.get(opened, 0) and now
        ),
        what="views.open counted",
    )

    change = moved(before, after)
    # Bolt's own client for the click, counted like the worker's.
    assert change[opened] == 1
    assert change[("share_image_ack_seconds_count", ())] == 1
