"""Building the bot's collaborators from its settings, in one place."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.scp import RetryPolicy, ScpAuth, ScpClient
from bot.scp.transport import RecentFirstConnector
from bot.settings import Settings
from bot.sharing.admin import Administration
from bot.sharing.approvals import ApprovalReminders
from bot.sharing.images import ImageCatalog
from bot.sharing.oncall import (
    ApproverSource,
    MayApprove,
    RotaKeeper,
    RotaReader,
    Source,
    StoredRota,
    TypedShifts,
    WhoIsOnCall,
)
from bot.sharing.policy import Policy
from bot.sharing.reconcile import Reconciler
from bot.sharing.records import Records
from bot.sharing.service import Following, ShareService
from bot.sharing.states import LIFECYCLE
from bot.sharing.worker import Worker
from bot.slack.accounts import SlackDirectory, slack_account
from bot.slack.announcer import Announcer
from bot.slack.client import CountedWebClient, SlackConnections
from bot.slack.languages import Languages
from bot.slack.web import web_client
from storage import (
    AuditLog,
    CloudMembers,
    Database,
    Grants,
    ImagePolicies,
    Images,
    KnownMembers,
    OnCall,
    OnCallSchedules,
    People,
    ReconcileRuns,
    Rota,
    ShareRequests,
    SlackEmails,
    SlackMessages,
)

log = logging.getLogger(__name__)


# A listener's slow follow-ups (a cloud read for `list`) under way at once, per process.
AFTER_ACK_AT_ONCE = 4
# The old name of AFTER_ACK_AT_ONCE.
AFTER_ACK_THREADS = AFTER_ACK_AT_ONCE
# How long `aclose` gives follow-ups under way to end before cancelling them.
AFTER_ACK_FINISH_SECONDS = 5.0


def make_web_client(
    settings: Settings,
    *,
    timeout: int = 10,
    connection_retries: int = 2,
    connections: SlackConnections | None = None,
) -> CountedWebClient:
    """The Slack Web API client for these settings (`bot.slack.web.web_client`), every
    call counted in `share_image_slack_calls_total`."""
    return web_client(
        settings.SLACK_BOT_TOKEN.get_secret_value(),
        settings.SLACK_API_URL,
        timeout=timeout,
        connection_retries=connection_retries,
        connections=connections,
        count=metrics.slack_call,
    )


def slack_connections() -> SlackConnections:
    """The one pool of connections to Slack: an idle one expires after its keep-alive
    time even under a steady load (`RecentFirstConnector`)."""
    return SlackConnections(connector=RecentFirstConnector)


def make_cloud_client(settings: Settings, **options: object) -> ScpClient:
    """The signed cloud API client for these settings, each request and retry counted:
    a connection for each call that may be under way at once."""
    options.setdefault("max_connections", settings.BOT_WORKER_THREADS + AFTER_ACK_AT_ONCE)
    retry = options.pop("retry", None) or RetryPolicy()
    assert isinstance(retry, RetryPolicy)
    auth = ScpAuth(
        settings.SCP_ACCESS_KEY.get_secret_value(),
        settings.SCP_SECRET_KEY.get_secret_value(),
        settings.SCP_ACCOUNT_ID,
    )
    return ScpClient(
        settings.scp_base_url,
        auth,
        api_version=settings.SCP_API_VERSION,
        language=settings.SCP_LANGUAGE,
        event_hooks=metrics.cloud_event_hooks(),
        retry=dataclasses.replace(retry, sleep=metrics.counting_retries(retry.sleep)),
        **options,  # type: ignore[arg-type]
    )


def make_rota_readers(settings: Settings) -> list[RotaReader]:
    """A reader for each on-call rota source the settings name (none when none is set)."""
    from bot.rota import Calendar, PagerDuty

    readers: list[RotaReader] = []
    if settings.ONCALL_PAGERDUTY_TOKEN is not None:
        readers.append(
            PagerDuty(
                settings.ONCALL_PAGERDUTY_TOKEN.get_secret_value(),
                base_url=settings.ONCALL_PAGERDUTY_URL,
            )
        )
    if settings.ONCALL_ICAL_URL is not None:
        readers.append(
            Calendar(settings.ONCALL_ICAL_URL.get_secret_value(), zone=settings.timezone)
        )
    return readers


def approver_sources(
    settings: Settings, *, oncall: OnCall, grants: Grants, rota: Rota, schedules: OnCallSchedules
) -> list[ApproverSource]:
    """Who is asked, in order: typed shifts, PagerDuty, the calendar (those set up), the
    then everyone who may approve (`who_may_approve`)."""
    sources: list[ApproverSource] = [TypedShifts(oncall)]
    if settings.ONCALL_PAGERDUTY_TOKEN is not None:
        sources.append(
            StoredRota(
                Source.PAGERDUTY,
                rota,
                grants,
                schedules=schedules,
                default_schedules=settings.pagerduty_schedules,
            )
        )
    if settings.ONCALL_ICAL_URL is not None:
        sources.append(StoredRota(Source.CALENDAR, rota, grants))
    sources.append(MayApprove(grants))
    return sources


@dataclass
class Services:
    """Everything the worker, the CLI and the app factory work with. Handlers never see
    it: the app factory hands each handler module only the services it calls."""

    settings: Settings
    database: Database
    requests: ShareRequests
    messages: SlackMessages
    grants: Grants
    members: KnownMembers
    oncall: OnCall
    audit: AuditLog
    cloud: ScpClient
    images: ImageCatalog
    share: ShareService
    admin: Administration
    languages: Languages
    announcer: Announcer
    # The cloud's member lists as last read, and the reconcile that reads them.
    seen: CloudMembers
    reconciler: Reconciler
    # Who is on call for an image now, and the worker's reader of the rotas.
    who: WhoIsOnCall
    rota: Rota
    schedules: OnCallSchedules
    rota_keeper: RotaKeeper
    # Who may do what, and who is asked to approve a request (and named when refused).
    policy: Policy
    # What handlers read and render: requests, their Slack side, images, members.
    records: Records
    # Called after a request is recorded: the worker in the same loop (`Worker.wake`) is
    # woken at once; a worker in another process polls the database every 50 ms.
    wake: Callable[[], None] = field(default=lambda: None)
    # The one aiohttp session (kept connections) of the bot's Slack clients.
    slack_connections: SlackConnections = field(default_factory=slack_connections)
    # Slow follow-ups of a listener (a cloud read for `list`) run as tasks, at most
    # AFTER_ACK_AT_ONCE at a time, so a flood of them never crowds out the worker.
    follow_up_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(AFTER_ACK_AT_ONCE)
    )
    _follow_ups: set[asyncio.Task[None]] = field(default_factory=set)

    # The Slack workspace the bot was installed in, from auth.test at start; "" until then.
    team_id: str = ""

    def settle_team(self, team_id: str) -> None:
        """The bot's own workspace: requests from others are refused, grants record it."""
        self.team_id = team_id
        self.admin.team_id = team_id
        claimed = self.grants.claim_unrecorded(team_id)
        if claimed:
            log.info(
                "grants without a workspace recorded as this one's",
                extra={"team": team_id, "grants": claimed},
            )

    def after_ack(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run the coroutine function `work` as a task of the running loop, once a slot of
        AFTER_ACK_AT_ONCE is free; a failure is logged whole. Called from a listener,
        after its ack."""

        async def run() -> None:
            async with self.follow_up_slots:
                try:
                    await work()
                except Exception:  # nobody else would see it
                    log.exception("follow-up after an ack failed")

        task = asyncio.get_running_loop().create_task(run())
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    async def aclose(self) -> None:
        """Give follow-ups under way a few seconds to end (then cancel them), and release
        the connections: Slack's, the cloud's, the rota sources', the database's."""
        pending = list(self._follow_ups)
        if pending:
            _, late = await asyncio.wait(pending, timeout=AFTER_ACK_FINISH_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for reader in self.rota_keeper.readers:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()
        await self.cloud.aclose()
        await self.slack_connections.aclose()
        self.database.close()


def build_services(
    settings: Settings,
    *,
    database: Database | None = None,
    slack: AsyncWebClient | None = None,
    cloud: ScpClient | None = None,
) -> Services:
    """Wire the storage, cloud client, share service, Slack output and administration.

    Synchronous, and usable outside an event loop: nothing here connects to anything.
    The Slack clients share one aiohttp session, opened in the loop at their first call.
    """
    database = database or Database(
        settings.DATABASE_PATH, connections=settings.DATABASE_CONNECTIONS
    )
    connections = getattr(slack, "connections", None) or slack_connections()
    slack = slack or make_web_client(settings, connections=connections)
    # Locale and account look-ups happen near the ack: one second at most, no retries.
    quick_slack = CountedWebClient(
        token=slack.token,
        base_url=slack.base_url,
        timeout=1,
        retry_handlers=[],
        connections=connections,
        count=metrics.slack_call,
    )
    cloud = cloud or make_cloud_client(settings)
    requests = ShareRequests(
        database,
        lifecycle=LIFECYCLE,
        approval_ttl=timedelta(hours=settings.SHARE_APPROVAL_TTL_HOURS),
    )
    grants = Grants(database)
    members = KnownMembers(database)
    oncall = OnCall(database)
    audit = AuditLog(database)
    images = ImageCatalog(
        Images(database),
        cloud,
        list_fresh=timedelta(seconds=settings.IMAGE_LIST_REFRESH_SECONDS),
    )
    policies = ImagePolicies(database)
    seen = CloudMembers(database)
    rota = Rota(database)
    schedules = OnCallSchedules(database)
    who = WhoIsOnCall(
        approver_sources(settings, oncall=oncall, grants=grants, rota=rota, schedules=schedules),
        clock=database.now,
    )
    # Who may do what, and who is asked: one answer for the service, the card and refusals.
    policy = Policy(grants, who=who, clock=database.now)
    share = ShareService(
        requests=requests,
        grants=grants,
        members=members,
        cloud=cloud,
        images=images,
        unknown_members=settings.SHARE_UNKNOWN_MEMBERS,
        make_shared=settings.SHARE_MAKE_SHARED,
        following=Following(
            every=timedelta(seconds=settings.SHARE_STATUS_POLL_SECONDS),
            days=timedelta(days=settings.SHARE_FOLLOW_DAYS),
        ),
        durations=settings.share_durations,
        policies=policies,
        reminders=ApprovalReminders(
            first_after=timedelta(minutes=settings.APPROVAL_REMIND_MINUTES),
            ttl=timedelta(hours=settings.SHARE_APPROVAL_TTL_HOURS),
        ),
        seen=seen,
        policy=policy,
    )
    messages = SlackMessages(database)
    rota_keeper = RotaKeeper(
        readers=make_rota_readers(settings),
        rota=rota,
        schedules=schedules,
        # The worker reads rotas: the ordinary client, retries and all.
        directory=SlackDirectory(slack, SlackEmails(database)),
        default_schedules=settings.pagerduty_schedules,
    )
    announcer = Announcer(
        slack,
        requests=requests,
        messages=messages,
        members=members,
        who=who,
        images=images,
        approval_channel=settings.SHARE_APPROVAL_CHANNEL,
        notify_channel=settings.SHARE_NOTIFY_CHANNEL,
        default_language=settings.BOT_DEFAULT_LANGUAGE,
        approval_ttl_hours=settings.SHARE_APPROVAL_TTL_HOURS,
        follow_days=settings.SHARE_FOLLOW_DAYS,
        zone=settings.timezone,
        policy=policy,
        failed=metrics.DELIVERY_FAILURES.inc,
        dropped=metrics.MESSAGES_DROPPED.inc,
        reminded=lambda audience: metrics.APPROVAL_REMINDERS.labels(audience=audience).inc(),
    )
    return Services(
        settings=settings,
        database=database,
        requests=requests,
        messages=messages,
        grants=grants,
        members=members,
        oncall=oncall,
        audit=audit,
        cloud=cloud,
        images=images,
        share=share,
        admin=Administration(
            grants=grants,
            members=members,
            oncall=oncall,
            audit=audit,
            schedules=schedules,
            who=who,
            pagerduty=settings.ONCALL_PAGERDUTY_TOKEN is not None,
            # On the ack path: the quick client, so a slow Slack costs at most a second.
            accounts=lambda user_id: slack_account(quick_slack, user_id),
            policies=policies,
        ),
        languages=Languages(People(database), quick_slack, settings.BOT_DEFAULT_LANGUAGE),
        announcer=announcer,
        seen=seen,
        reconciler=Reconciler(
            requests=requests,
            service=share,
            cloud=cloud,
            members=seen,
            runs=ReconcileRuns(database),
            teller=announcer,
            every=timedelta(seconds=settings.SHARE_RECONCILE_SECONDS),
            follow=timedelta(days=settings.SHARE_FOLLOW_DAYS),
            found=lambda kind: metrics.DRIFT_FOUND.labels(kind=kind).inc(),
            dropped=metrics.MESSAGES_DROPPED.inc,
        ),
        who=who,
        rota=rota,
        schedules=schedules,
        rota_keeper=rota_keeper,
        policy=policy,
        records=Records(
            requests=requests,
            messages=messages,
            images=images,
            stored=images.stored,
            members=members,
            seen=seen,
            policy=policy,
            clock=database.now,
        ),
        slack_connections=connections,
    )


def make_worker(services: Services, **options: object) -> Worker:
    """The worker for these services and their settings, woken by every recorded request
    (`services.wake`) and counted in the metrics; `options` override any argument."""
    settings = services.settings
    arguments: dict[str, object] = dict(
        requests=services.requests,
        service=services.share,
        announcer=services.announcer,
        languages=services.languages,
        at_once=settings.BOT_WORKER_THREADS,
        images=services.images,
        image_refresh=timedelta(seconds=settings.IMAGE_LIST_REFRESH_SECONDS),
        reconciler=services.reconciler,
        rota=services.rota_keeper,
        rota_refresh=timedelta(seconds=settings.ONCALL_REFRESH_SECONDS),
        looked=metrics.worker_looked,
    )
    arguments.update(options)
    worker = Worker(**arguments)  # type: ignore[arg-type]
    services.wake = worker.wake
    return worker
