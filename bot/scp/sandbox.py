"""A local stand-in for SCP's image API: a real HTTP server that checks everything.

Operators run it (`python -m bot sandbox`) to try the bot before they have cloud keys;
tests and the benchmark use it as the cloud API peer. It checks the gateway headers and
the signature (401, gateway envelope), the API version (400 `UnsupportedApiVersion`),
routes, ids, query parameters and bodies exactly as `docs/scp-api.md` describes (member
calls on an image that is not `shared` are refused, as Glance and SCP's console do; `PUT
/v1/images/{id}` sets `private` or `shared`), keeps images and their members in memory,
records every request, and misbehaves on demand (`Fault`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.message import Message
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel, TypeAdapter, ValidationError

from bot.scp.auth import CLIENT_TYPE, sign
from bot.scp.models import (
    ApiVersion,
    Image,
    ImageId,
    ImageMember,
    ImageMemberCreateRequest,
    ImageMemberStatusRequest,
    ImageSetRequest,
    MemberId,
    MemberStatus,
    VersionList,
    Visibility,
)

log = logging.getLogger(__name__)

SERVICE = "virtualserver"
DEFAULT_ACCESS_KEY = "sandbox-access-key"
DEFAULT_SECRET_KEY = "sandbox-secret-key"
# As the operation's own page lists them (docs/scp-api.md, "Versions"): 1.1 CURRENT, 1.0
# DEPRECATED with its minimum support guarantee date. `--versions` serves another list.
DEFAULT_VERSIONS: tuple[ApiVersion, ...] = (
    ApiVersion(id="v1.1", status="CURRENT"),
    ApiVersion(id="v1.0", status="DEPRECATED", not_before="2025-12-31"),
)
VERSION_STATUSES = ("CURRENT", "SUPPORTED", "DEPRECATED")
SIGNED_HEADERS = (
    "Scp-Accesskey",
    "Scp-Signature",
    "Scp-Timestamp",
    "Scp-ClientType",
    "Scp-AccountId",
)
MAX_BODY = 1 << 20
# The list-images call: `limit` 1 to 1000; without one, a page this long.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
LIST_PARAMETERS = frozenset(
    {
        "limit",
        "marker",
        "name",
        "os_distro",
        "status",
        "visibility",
        "sort",
        "scp_image_type",
        "scp_original_image_type",
    }
)
SORT_KEYS = ("created_at", "updated_at", "name", "id", "size", "status")
GiB = 1024**3


def _seed(
    image_id: str,
    name: str,
    os_distro: str,
    version: str,
    created_at: str,
    *,
    status: str = "active",
    visibility: str = "private",
    size_gb: int = 10,
) -> Image:
    return Image(
        id=image_id,
        name=name,
        os_distro=os_distro,
        scp_os_version=version,
        status=status,
        visibility=visibility,
        size=size_gb * GiB,
        min_disk=max(size_gb, 100),
        owner_account_name="sandbox-account" if visibility != "public" else None,
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(created_at),
    )


# What `python -m bot sandbox` serves unless `--images` says otherwise: a few of each kind
# the bot treats differently (shareable, public, not active yet).
DEFAULT_IMAGES: tuple[Image, ...] = (
    _seed("70a599e0-31e7-49b7-b260-868f441e862b", "rocky9-golden", "rocky", "9.4", "2026-11-02"),
    _seed("5b1c7d2e-8f3a-4b6c-9d0e-1f2a3b4c5d6e", "ubuntu22-base", "ubuntu", "22.04", "2026-10-15"),
    _seed(
        "c3d4e5f6-a7b8-4c9d-8e0f-112233445566",
        "win2022-std",
        "windows",
        "2022",
        "2026-09-01",
        visibility="shared",
        size_gb=40,
    ),
    _seed(
        "0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a",
        "rhel9-build",
        "rhel",
        "9.4",
        "2026-11-30",
        status="queued",
    ),
    _seed(
        "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
        "Ubuntu 24.04 (public)",
        "ubuntu",
        "24.04",
        "2026-06-01",
        visibility="public",
        size_gb=3,
    ),
)

_ROUTE = re.compile(r"^/v1/images/(?P<image>[^/]+)/members(?:/(?P<member>[^/]+))?$")
PENDING_IMAGES = "/v1/pending-images"
_IMAGE_ROUTE = re.compile(r"^/v1/images(?:/(?P<image>[^/]+))?$")
_IMAGE_ID: TypeAdapter[str] = TypeAdapter(ImageId)
_MEMBER_ID: TypeAdapter[str] = TypeAdapter(MemberId)


class FaultKind(StrEnum):
    """What a scripted fault does to the request it catches."""

    ANSWER = "answer"  # answer `status` with `body` instead of the real answer
    STALL = "stall"  # wait `seconds` (longer than the client's timeout), then answer normally
    RESET = "reset"  # reset the connection without an answer


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used up by the first request it matches.

    `apply=True` carries the operation out first (the member is added) and then answers
    or drops as told: the client never learns that its request succeeded.
    """

    kind: FaultKind
    method: str | None = None
    path: str = ""
    status: int = 503
    # None: a service-envelope error for `status`.
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    apply: bool = False

    @classmethod
    def answer(
        cls,
        status: int,
        body: bytes | str | None = None,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        apply: bool = False,
        method: str | None = None,
        path: str = "",
    ) -> Fault:
        """Answer `status` with `body` (e.g. 503 + Retry-After, a proxy's HTML, cut JSON)."""
        raw = body.encode() if isinstance(body, str) else body
        return cls(
            FaultKind.ANSWER,
            method,
            path,
            status=status,
            body=raw,
            content_type=content_type,
            headers=dict(headers or {}),
            apply=apply,
        )

    @classmethod
    def stall(cls, seconds: float, *, method: str | None = None, path: str = "") -> Fault:
        """Hold the request `seconds` before handling it normally."""
        return cls(FaultKind.STALL, method, path, seconds=seconds)

    @classmethod
    def reset(cls, *, method: str | None = None, path: str = "") -> Fault:
        """Reset the connection without applying anything or answering."""
        return cls(FaultKind.RESET, method, path)

    @classmethod
    def apply_then_drop(cls, *, method: str | None = None, path: str = "") -> Fault:
        """Carry the operation out, then reset the connection without an answer."""
        return cls(FaultKind.RESET, method, path, apply=True)

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault catches a request of `method` on `path`."""
        return (self.method is None or self.method.upper() == method) and self.path in path


@dataclass(frozen=True)
class Record:
    """One request the sandbox received and what became of it.

    `member_id` comes from the body, else from the path. `status` is None while the
    request is being handled (`done` False) and when no answer was sent.
    """

    method: str
    path: str
    member_id: str | None
    signed: bool
    status: int | None
    at: float
    request_id: str
    fault: Fault | None = None
    done: bool = False
    query: str = ""  # as sent, after the `?`


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Image:
    shareable: bool
    details: Image
    members: dict[str, ImageMember] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        """ImageShowResponse as SCP's OpenAPI description shows it, timestamps and all."""
        data = self.details.model_dump()
        for name in ("created_at", "updated_at"):
            moment = data[name]
            # The description's form, `2024-06-16 02:55:13+00:00`, not the members' `...Z`.
            data[name] = moment.astimezone(UTC).isoformat(sep=" ", timespec="seconds")
        # Strings the description requires: never null; empty for an image registered
        # without them (the bot then shows the bare id, and the owner's account id).
        for name in ("name", "owner_account_name"):
            data[name] = data[name] or ""
        # Required fields the bot does not read, so that it is seen to ignore them.
        return data | {
            "min_ram": 0,
            "disk_format": "qcow2",
            "container_format": "bare",
            "os_hidden": False,
            "protected": False,
            "file": f"/v2/images/{self.details.id}/file",
        }


def _request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


def _json(status: int, data: Any, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(data).encode(), headers=headers)


def _service_error(status: int, code: str, detail: str | list[str], request_id: str) -> _Reply:
    item = {
        "code": code,
        "title": code,
        "status": status,
        "detail": detail,
        "request_id": request_id,
        "global_request_id": _request_id(),
        "links": [],
        "related_resources": [],
        "response": None,
    }
    return _json(status, {"errors": [item]})


def _gateway_error(message: str) -> _Reply:
    body = {"status": "UNAUTHORIZED", "name": "Request was rejected by gateway", "message": message}
    return _json(401, body)


def _framework_error(status: int, error: str, path: str, request_id: str) -> _Reply:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    body = {"timestamp": stamp, "path": path, "status": status, "error": error}
    return _json(status, body | {"requestId": request_id})


def _fault_reply(fault: Fault, request_id: str) -> _Reply:
    if fault.body is not None:
        return _Reply(fault.status, fault.body, fault.content_type, fault.headers)
    code = HTTPStatus(fault.status).phrase.replace(" ", "")
    detail = f"scripted fault: {fault.status}"
    return replace(_service_error(fault.status, code, detail, request_id), headers=fault.headers)


def _validation_details(error: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors()]


_Body = TypeVar("_Body", bound=BaseModel)


def _json_body(
    headers: Message, body: bytes, model: type[_Body], request_id: str
) -> _Body | _Reply:
    """A JSON request body read as `model`, or the service's 400 for it."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        detail = "Content-Type must be application/json"
        return _service_error(400, "ValidationError", detail, request_id)
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        return _service_error(400, "ValidationError", _validation_details(error), request_id)


class Sandbox:
    """The image-member API on a local port, with in-memory images, records and faults."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        account_id: str = "",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        open_images: bool = False,
        open_visibility: Visibility | str = Visibility.PRIVATE,
        delay: float = 0.0,
        max_skew_seconds: float = 300.0,
        versions: Sequence[ApiVersion] = DEFAULT_VERSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key = access_key
        self._secret_key = secret_key
        self.account_id = account_id
        self.host = host
        self.port = port
        self.open_images = open_images
        # What an image made up on first use is: private, as a new image is in SCP.
        self.open_visibility = Visibility(open_visibility).value
        self.delay = delay
        self.max_skew_seconds = max_skew_seconds
        self.versions = list(versions)
        self._clock = clock
        self._lock = threading.Condition()
        self._images: dict[str, _Image] = {}
        self._records: list[Record] = []
        self._faults: list[Fault] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Sandbox(access_key={self.access_key!r}, url={self._url_or_none()!r})"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Sandbox:
        """Listen and serve in a daemon thread; returns self. Starting twice is a no-op."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            # A short poll keeps stop() quick: shutdown() waits for the loop to look up.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="scp-sandbox", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for their threads."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes delays and stalls
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the client, e.g. `http://127.0.0.1:54321`."""
        url = self._url_or_none()
        if url is None:
            raise RuntimeError("the sandbox is not started")
        return url

    def _url_or_none(self) -> str | None:
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- state -----------------------------------------------------------------------

    def add_image(
        self,
        image_id: str,
        *,
        shareable: bool = True,
        name: str | None = None,
        os_distro: str | None = None,
        scp_os_version: str | None = None,
        status: str = "active",
        visibility: str = Visibility.PRIVATE.value,
        size: int | None = None,
        min_disk: int = 0,
        owner_account_name: str | None = None,
        created_at: datetime | None = None,
    ) -> Image:
        """Register an image this account sees; its details as the image calls answer them.

        `shareable=False` (or a public image) answers 403 to its members, as SCP does; every
        member call on an image that is not `shared` is refused with 403 too, as Glance
        does (only Shared images have members: `visibility="shared"`, or a `PUT`, makes
        it shareable). Without
        a `name` the image is served nameless (the real service always names one), so that
        the bot's fallback to the bare id can be seen.
        """
        image_id = _IMAGE_ID.validate_python(image_id)
        if visibility not in set(Visibility):
            raise ValueError(f"visibility must be one of {', '.join(Visibility)}")
        when = created_at or datetime.fromtimestamp(self._clock(), UTC)
        details = Image(
            id=image_id,
            name=name,
            os_distro=os_distro,
            scp_os_version=scp_os_version,
            status=status,
            visibility=visibility,
            size=size,
            min_disk=min_disk,
            owner=self.account_id or "sandbox-account-id",
            owner_account_name=owner_account_name,
            created_at=when,
            updated_at=when,
        )
        return self.seed_image(details, shareable=shareable)

    def seed_image(self, details: Image, *, shareable: bool = True) -> Image:
        """Register an image from its details (`--images`, `DEFAULT_IMAGES`), keeping members."""
        image_id = _IMAGE_ID.validate_python(details.id)
        update: dict[str, Any] = {}
        if details.owner is None:
            update["owner"] = self.account_id or "sandbox-account-id"
        if details.created_at is None:
            update["created_at"] = datetime.fromtimestamp(self._clock(), UTC)
        if details.updated_at is None:
            update["updated_at"] = details.created_at or update["created_at"]
        if details.status is None:
            update["status"] = "active"
        if details.visibility is None:
            update["visibility"] = Visibility.PRIVATE.value
        details = details.model_copy(update=update)
        with self._lock:
            old = self._images.get(image_id)
            self._images[image_id] = _Image(
                shareable=shareable, details=details, members=old.members if old else {}
            )
        return details

    def images(self) -> list[Image]:
        """Every image the sandbox serves, as registered."""
        with self._lock:
            return [image.details for image in self._images.values()]

    def members(self, image_id: str) -> list[ImageMember]:
        """The image's members, oldest first; empty for an image nobody touched."""
        with self._lock:
            image = self._images.get(image_id)
            return list(image.members.values()) if image else []

    def set_member_status(
        self, image_id: str, member_id: str, status: MemberStatus | str
    ) -> ImageMember:
        """Change a member's status, as the other account would; KeyError if not a member."""
        status = MemberStatus(status)
        with self._lock:
            members = self._images[image_id].members
            member = members[member_id].model_copy(
                update={"status": status.value, "updated_at": self._now()}
            )
            members[member_id] = member
            return member

    def set_visibility(self, image_id: str, visibility: Visibility | str) -> Image:
        """Change an image's visibility, as someone in the console would; KeyError if unknown."""
        value = Visibility(visibility).value
        with self._lock:
            image = self._images[image_id]
            image.details = image.details.model_copy(
                update={
                    "visibility": value,
                    "updated_at": datetime.fromtimestamp(self._clock(), UTC),
                }
            )
            return image.details

    # -- records and faults -----------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """Every request received so far, in order of arrival."""
        with self._lock:
            return list(self._records)

    def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 5.0
    ) -> list[Record]:
        """Wait until `predicate(records)` holds and return the records; TimeoutError if not."""
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(list(self._records)), timeout):
                raise TimeoutError(f"no matching requests within {timeout}s: {self._records}")
            return list(self._records)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is used up by the first later request it matches."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def faults(self) -> list[Fault]:
        """Faults not used yet."""
        with self._lock:
            return list(self._faults)

    # -- serving ---------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _track(self, connection: socket.socket, live: bool) -> None:
        with self._lock:
            if not live:
                self._connections.discard(connection)
            elif self._stopping.is_set():
                connection.shutdown(socket.SHUT_RDWR)  # accepted while stop() was cutting
            else:
                self._connections.add(connection)

    def _serve(self, method: str, target: str, headers: Message, body: bytes) -> _Reply | None:
        """Answer one request (None: drop the connection); records and logs it."""
        path = target.partition("?")[0]
        request_id = _request_id()
        versions_route = method == "GET" and path == "/"
        problem = None if versions_route else self._gateway_problem(method, target, headers)
        with self._lock:
            index = len(self._records)
            record = Record(
                method=method,
                path=path,
                member_id=_member_in(path, body),
                signed=not versions_route and problem is None,
                status=None,
                at=time.monotonic(),
                request_id=request_id,
                query=target.partition("?")[2],
            )
            self._records.append(record)
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                self._faults.remove(fault)
            self._lock.notify_all()

        if fault is not None and fault.kind is FaultKind.STALL:
            self._stopping.wait(fault.seconds)
        if path.startswith("/v1/") and self.delay > 0:
            self._stopping.wait(self.delay)

        reply: _Reply | None = None
        if fault is None or fault.kind is FaultKind.STALL or fault.apply:
            if versions_route:
                reply = self._versions(headers)
            elif problem is not None:
                reply = _gateway_error(problem)
            else:
                query = target.partition("?")[2]
                reply = self._dispatch(method, path, headers, body, request_id, query)
            reply = replace(reply, headers={"X-Request-Id": request_id, **reply.headers})
        if fault is not None and fault.kind is FaultKind.ANSWER:
            reply = _fault_reply(fault, request_id)
        elif fault is not None and fault.kind is FaultKind.RESET:
            reply = None

        status = reply.status if reply else None
        with self._lock:
            self._records[index] = replace(record, status=status, fault=fault, done=True)
            self._lock.notify_all()
        log.info("%s %s -> %s %s", method, path, status or "dropped", request_id)
        return reply

    def _gateway_problem(self, method: str, target: str, headers: Message) -> str | None:
        """What the API gateway objects to, or None; never echoes a signature or secret."""
        values = {name: headers.get(name) for name in SIGNED_HEADERS}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            return f"missing header(s): {', '.join(missing)}"
        access_key, signature, timestamp, client_type, account_id = (
            str(values[name]) for name in SIGNED_HEADERS
        )
        if client_type != CLIENT_TYPE:
            return f"Scp-ClientType must be {CLIENT_TYPE}"
        if not hmac.compare_digest(access_key.encode("latin-1"), self.access_key.encode()):
            return "unknown access key"
        if account_id != self.account_id:
            return "Scp-AccountId does not belong to this access key"
        if not timestamp.isdigit():
            return "Scp-Timestamp must be epoch milliseconds"
        skew = abs(self._clock() - int(timestamp) / 1000)
        if skew > self.max_skew_seconds:
            return (
                f"Scp-Timestamp is {skew:.0f}s away from the server clock "
                f"(allowed {self.max_skew_seconds:.0f}s)"
            )
        expected = sign(
            method=method,
            url=f"http://{headers.get('Host', '')}{target}",
            timestamp=timestamp,
            access_key=access_key,
            account_id=account_id,
            secret_key=self._secret_key,
        )
        if not hmac.compare_digest(signature.encode("latin-1"), expected.encode()):
            return "signature does not match"
        return None

    def served(self) -> list[ApiVersion]:
        """The versions listed and served: all of `versions` but those withdrawn.

        A listed version is served, whatever its status or `not_before` (past that date it
        *may* be withdrawn). `supported_until`, a field of the sandbox's own, is the day
        it is withdrawn: after it the version is neither listed nor served.
        """
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        return [v for v in self.versions if not _withdrawn(v, today)]

    def _versions(self, headers: Message) -> _Reply:
        href = f"http://{headers.get('Host', '')}/v1/"
        listing = VersionList(
            versions=[
                v.model_copy(update={"links": [{"rel": "self", "href": href}]})
                for v in self.served()
            ]
        )
        return _Reply(200, listing.model_dump_json(exclude_none=True).encode())

    def _version_problem(self, headers: Message) -> str | None:
        value = headers.get("Scp-Api-Version")
        if not value:
            return f"Scp-Api-Version missing: send '{SERVICE} <version>'"
        service, _, number = value.partition(" ")
        served = self.served()
        if service != SERVICE or not number:
            return f"Scp-Api-Version must be '{SERVICE} <version>'"
        if any(v.number == number for v in served):
            return None
        withdrawn = next((v for v in self.versions if v.number == number), None)
        names = ", ".join(v.number for v in served) or "none"
        if withdrawn is not None:
            return (
                f"version {number} was supported until {withdrawn.supported_until}; served: {names}"
            )
        return f"version {number} is not served; served: {names}"

    def _dispatch(
        self,
        method: str,
        path: str,
        headers: Message,
        body: bytes,
        request_id: str,
        query: str = "",
    ) -> _Reply:
        if path == PENDING_IMAGES:
            return self._pending_images(method, path, headers, request_id)
        image_match = _IMAGE_ROUTE.match(path)
        if image_match is not None:
            return self._dispatch_image(method, path, headers, body, request_id, image_match, query)
        match = _ROUTE.match(path)
        if match is None:
            return _framework_error(404, "Not Found", path, request_id)
        raw_member = match["member"]
        allowed = ("GET", "POST") if raw_member is None else ("GET", "PUT", "DELETE")
        if method not in allowed:
            return _framework_error(405, "Method Not Allowed", path, request_id)
        problem = self._version_problem(headers)
        if problem is not None:
            return _service_error(400, "UnsupportedApiVersion", problem, request_id)

        try:
            image_id = _IMAGE_ID.validate_python(unquote(match["image"]))
        except ValidationError:
            return _service_error(400, "ValidationError", "image_id must be a UUID", request_id)
        member_id: str | None = None
        if raw_member is not None:
            try:
                member_id = _MEMBER_ID.validate_python(unquote(raw_member))
            except ValidationError:
                detail = "member_id must be 1 to 64 of [A-Za-z0-9-]"
                return _service_error(400, "ValidationError", detail, request_id)

        payload: ImageMemberCreateRequest | ImageMemberStatusRequest | None = None
        if method in ("POST", "PUT"):
            read = (
                _json_body(headers, body, ImageMemberCreateRequest, request_id)
                if method == "POST"
                else _json_body(headers, body, ImageMemberStatusRequest, request_id)
            )
            if isinstance(read, _Reply):
                return read
            payload = read

        with self._lock:
            image = self._images.get(image_id) or self._open_image(image_id)
            if image is None:
                return _framework_error(404, "Not Found", path, request_id)
            if not image.shareable or image.details.visibility == Visibility.PUBLIC:
                detail = f"image {image_id} cannot be shared"
                return _service_error(403, "Forbidden", detail, request_id)
            if image.details.visibility != Visibility.SHARED:
                # Glance's rule, and SCP's console guide: only a Shared image has members,
                # to add, list, show, set or remove (they come back if it is Shared again).
                detail = (
                    f"Only shared images have members: image {image_id} is"
                    f" {image.details.visibility}"
                )
                return _service_error(403, "Forbidden", detail, request_id)
            return self._operate(method, image_id, image, member_id, payload, request_id)

    def _open_image(self, image_id: str) -> _Image | None:
        """An image made up on first use (open sandboxes; None otherwise); the caller holds
        the lock."""
        if not self.open_images:
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        details = Image(
            id=image_id,
            status="active",
            visibility=self.open_visibility,
            owner=self.account_id or "sandbox-account-id",
            min_disk=0,
            created_at=now,
            updated_at=now,
        )
        image = self._images[image_id] = _Image(shareable=True, details=details)
        return image

    def _dispatch_image(
        self,
        method: str,
        path: str,
        headers: Message,
        body: bytes,
        request_id: str,
        match: re.Match[str],
        query: str,
    ) -> _Reply:
        """`GET /v1/images/{image_id}`, `PUT /v1/images/{image_id}` and `GET /v1/images`."""
        allowed = ("GET",) if match["image"] is None else ("GET", "PUT")
        if method not in allowed:
            return _framework_error(405, "Method Not Allowed", path, request_id)
        problem = self._version_problem(headers)
        if problem is not None:
            return _service_error(400, "UnsupportedApiVersion", problem, request_id)
        if match["image"] is None:
            return self._list_images(query, request_id)
        try:
            image_id = _IMAGE_ID.validate_python(unquote(match["image"]))
        except ValidationError:
            return _service_error(400, "ValidationError", "image_id must be a UUID", request_id)
        payload: ImageSetRequest | None = None
        if method == "PUT":
            read = _json_body(headers, body, ImageSetRequest, request_id)
            if isinstance(read, _Reply):
                return read
            payload = read
        with self._lock:
            image = self._images.get(image_id) or self._open_image(image_id)
            if image is None:
                detail = f"image {image_id} not found"
                return _service_error(404, "NotFound", detail, request_id)
            if payload is not None:
                if not image.shareable or image.details.visibility in (
                    Visibility.PUBLIC,
                    Visibility.COMMUNITY,
                ):
                    detail = f"the visibility of image {image_id} cannot be changed"
                    return _service_error(403, "Forbidden", detail, request_id)
                image.details = image.details.model_copy(
                    update={
                        "visibility": payload.visibility,
                        "updated_at": datetime.fromtimestamp(self._clock(), UTC),
                    }
                )
            return _json(200, image.answer())

    def _pending_images(self, method: str, path: str, headers: Message, request_id: str) -> _Reply:
        """`GET /v1/pending-images`: the images shared with the calling account that wait
        for its answer (it is a member, `pending`), as `GET /v1/images` shows images."""
        if method != "GET":
            return _framework_error(405, "Method Not Allowed", path, request_id)
        problem = self._version_problem(headers)
        if problem is not None:
            return _service_error(400, "UnsupportedApiVersion", problem, request_id)
        with self._lock:
            waiting = [
                image.answer()
                for image in self._images.values()
                if (member := image.members.get(self.account_id)) is not None
                and member.status == MemberStatus.PENDING.value
            ]
        return _json(200, {"images": waiting})

    def _list_images(self, query: str, request_id: str) -> _Reply:
        """One page of the list, refusing what the service refuses."""

        def refuse(detail: str) -> _Reply:
            return _service_error(400, "ValidationError", detail, request_id)

        try:
            given = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            return refuse("the query string cannot be read")
        unknown = sorted(set(given) - LIST_PARAMETERS)
        if unknown:
            return refuse(f"unknown query parameter(s): {', '.join(unknown)}")
        repeated = sorted(name for name, values in given.items() if len(values) > 1)
        if repeated:
            return refuse(f"query parameter(s) given more than once: {', '.join(repeated)}")
        params = {name: values[0] for name, values in given.items()}

        limit_text = params.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            return refuse(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
        visibility = params.get("visibility")
        if visibility is not None and visibility not in set(Visibility):
            return refuse(f"visibility must be one of {', '.join(Visibility)}")
        key, _, direction = params.get("sort", "created_at:desc").partition(":")
        direction = direction or "desc"
        if key not in SORT_KEYS or direction not in ("asc", "desc"):
            return refuse(f"sort must be KEY[:asc|desc], KEY one of {', '.join(SORT_KEYS)}")

        with self._lock:
            images = [image.details for image in self._images.values()]
            answers = {image.details.id: image.answer() for image in self._images.values()}
        for name in ("name", "os_distro", "status", "visibility"):
            if name in params:
                images = [image for image in images if getattr(image, name) == params[name]]
        images.sort(key=lambda image: image.id)
        images.sort(key=lambda image: _sort_value(image, key), reverse=direction == "desc")
        start = 0
        marker = params.get("marker")
        if marker is not None:
            index = next((i for i, image in enumerate(images) if image.id == marker), None)
            if index is None:
                return refuse(f"marker {marker} is not an image of this list")
            start = index + 1
        page = images[start : start + limit]
        return _json(200, {"images": [answers[image.id] for image in page]})

    def _operate(
        self,
        method: str,
        image_id: str,
        image: _Image,
        member_id: str | None,
        payload: ImageMemberCreateRequest | ImageMemberStatusRequest | None,
        request_id: str,
    ) -> _Reply:
        """The member operation proper; the caller holds the lock."""
        if isinstance(payload, ImageMemberCreateRequest):
            existing = image.members.get(payload.member_id)
            if existing is not None:
                detail = f"{payload.member_id} is already a member ({existing.status})"
                return _service_error(409, "Conflict", detail, request_id)
            now = self._now()
            added = ImageMember(
                created_at=now,
                image_id=image_id,
                member_id=payload.member_id,
                status=MemberStatus.PENDING.value,
                updated_at=now,
            )
            image.members[added.member_id] = added
            return _Reply(200, added.model_dump_json().encode())
        if member_id is None:
            listing = {"members": [m.model_dump() for m in image.members.values()]}
            return _json(200, listing)
        member = image.members.get(member_id)
        if member is None:
            detail = f"{member_id} is not a member of image {image_id}"
            return _service_error(404, "NotFound", detail, request_id)
        if isinstance(payload, ImageMemberStatusRequest):
            member = member.model_copy(
                update={"status": payload.status.value, "updated_at": self._now()}
            )
            image.members[member_id] = member
        elif method == "DELETE":
            del image.members[member_id]
            return _Reply(204, content_type="")
        return _Reply(200, member.model_dump_json().encode())


def _sort_value(image: Image, key: str) -> tuple[bool, Any]:
    """A key that sorts images missing the value last (first, reversed) and never fails."""
    value = getattr(image, key)
    return (value is not None, value if value is not None else 0)


def load_images(text: str) -> list[Image]:
    """Images from JSON: the list call's own answer (`{"images": [...]}`) or its list.

    Each image needs an `id` (a UUID) and a `name`; everything else is optional, with
    `status` `active` and `visibility` `private` when left out.
    """
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if isinstance(data, dict) and "images" in data:
        data = data["images"]
    if not isinstance(data, list) or not data:
        raise ValueError('expected {"images": [...]} or a list of images, with one at least')
    images: list[Image] = []
    for number, entry in enumerate(data, start=1):
        where = f"image {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        try:
            image = Image.model_validate(entry)
            _IMAGE_ID.validate_python(image.id)
        except ValidationError as error:
            raise ValueError(f"{where}: " + "; ".join(_validation_details(error))) from None
        if not image.name:
            raise ValueError(f"{where} ({image.id}) has no name")
        if image.visibility is not None and image.visibility not in set(Visibility):
            raise ValueError(f"{where}: visibility must be one of {', '.join(Visibility)}")
        if any(seen.id == image.id for seen in images):
            raise ValueError(f"{where}: id {image.id} is listed twice")
        images.append(image)
    return images


def _withdrawn(version: ApiVersion, today: date) -> bool:
    until = version.supported_until
    return bool(until) and _day(str(until)) < today


def _day(text: str) -> date:
    """`2025-12-31` or `20251231` (the documentation writes both)."""
    text = text.strip()
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return date.fromisoformat(text[:10])


def parse_versions(spec: str) -> list[ApiVersion]:
    """`1.3:CURRENT,1.1:DEPRECATED:2026-08-31` as a version list; ValueError saying why not.

    Each entry is VERSION:STATUS[:NOT_BEFORE], comma-separated: VERSION like `1.3`
    (or `v1.3`), STATUS one of CURRENT, SUPPORTED, DEPRECATED, NOT_BEFORE the minimum
    support guarantee date as YYYY-MM-DD (or YYYYMMDD).
    """
    versions: list[ApiVersion] = []
    for entry in (part.strip() for part in spec.split(",")):
        fields = entry.split(":")
        if not entry or len(fields) not in (2, 3):
            raise ValueError(f"{entry!r} is not VERSION:STATUS[:NOT_BEFORE]")
        number, status = fields[0].strip().removeprefix("v"), fields[1].strip().upper()
        if not re.fullmatch(r"\d+\.\d+", number):
            raise ValueError(f"{fields[0]!r} is not a version like 1.3")
        if status not in VERSION_STATUSES:
            raise ValueError(f"{fields[1]!r} is not a status: {', '.join(VERSION_STATUSES)}")
        not_before = None
        if len(fields) == 3:
            try:
                not_before = _day(fields[2]).isoformat()
            except ValueError:
                raise ValueError(f"{fields[2]!r} is not a date like 2026-08-31") from None
        if any(v.number == number for v in versions):
            raise ValueError(f"version {number} is listed twice")
        versions.append(ApiVersion(id=f"v{number}", status=status, not_before=not_before))
    return versions


def load_versions(text: str) -> list[ApiVersion]:
    """A version list from JSON: the service's own answer (`{"versions": [...]}`) or its list."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    if isinstance(data, list):
        data = {"versions": data}
    try:
        versions = VersionList.model_validate(data).versions
    except ValidationError as error:
        raise ValueError("; ".join(_validation_details(error))) from None
    for version in versions:
        for name in ("not_before", "supported_until"):
            value = getattr(version, name)
            if value:
                try:
                    _day(str(value))
                except ValueError:
                    raise ValueError(f"{version.id}: {name} {value!r} is not a date") from None
    return versions


def _member_in(path: str, body: bytes) -> str | None:
    """The member a request is about: the body's `member_id`, else the path's."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("member_id"), str):
        return str(data["member_id"])
    match = _ROUTE.match(path)
    return unquote(match["member"]) if match and match["member"] else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("sandbox: %s went away", client_address)
        else:
            log.exception("sandbox: error while handling a request from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, live=True)

    def finish(self) -> None:
        self.server.sandbox._track(self.connection, live=False)
        with contextlib.suppress(OSError):  # the peer is gone
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox http.server: " + format, *args)

    def _handle(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked or not length.isdigit() or int(length) > MAX_BODY:
            # The body cannot be skipped reliably, so the connection goes too.
            self.close_connection = True
            self._write(_Reply(411 if chunked else 400, b'{"error": "bad Content-Length"}'))
            return
        body = self.rfile.read(int(length))
        reply = self.server.sandbox._serve(self.command, self.path, self.headers, body)
        if reply is None:
            self._reset()
        else:
            self._write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _write(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True  # the client gave up (timeout) or reset

    def _reset(self) -> None:
        # Linger 0 makes close() send RST: the client sees a reset, not a clean end.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


def run_sandbox(
    port: int,
    *,
    host: str = "127.0.0.1",
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    account_id: str = "",
    versions: Sequence[ApiVersion] = DEFAULT_VERSIONS,
    images: Sequence[Image] = DEFAULT_IMAGES,
    announce: Callable[[Sandbox], None] | None = None,
) -> None:
    """Serve an open sandbox (any image id works) with `images` until Ctrl-C or SIGTERM.

    `announce` is called once it listens (`python -m bot sandbox` prints the lines for
    `.env` there); by default one line with its URL.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sandbox = Sandbox(
        access_key,
        secret_key,
        account_id,
        host=host,
        port=port,
        open_images=True,
        versions=versions,
    )
    for image in images:
        sandbox.seed_image(image)
    try:
        sandbox.start()
    except OSError as error:
        raise SystemExit(f"sandbox: cannot listen on {host}:{port}: {error.strerror}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with sandbox:
        if announce is not None:
            announce(sandbox)
        print(f"SCP sandbox ready: set SCP_ENDPOINT={sandbox.url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("sandbox stopped", flush=True)
