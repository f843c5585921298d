"""Request signing for the cloud API, as an `httpx.Auth`.

    message   = METHOD + URL + TIMESTAMP + ACCESS_KEY + ACCOUNT_ID + "Openapi"
    signature = base64(HMAC-SHA256(SECRET_KEY, message))

URL is the full URL exactly as it goes on the wire; the body is not signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Generator

import httpx

CLIENT_TYPE = "Openapi"


def sign(
    *, method: str, url: str, timestamp: str, access_key: str, account_id: str, secret_key: str
) -> str:
    """The `Scp-Signature` of one request."""
    message = method.upper() + url + timestamp + access_key + account_id + CLIENT_TYPE
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ScpAuth(httpx.Auth):
    """Signs every request (and so every retry) afresh with the current time."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        account_id: str = "",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key = access_key
        self._secret_key = secret_key
        self.account_id = account_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"ScpAuth(access_key={self.access_key!r}, account_id={self.account_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock() * 1000))
        request.headers["Scp-Accesskey"] = self.access_key
        request.headers["Scp-Timestamp"] = timestamp
        request.headers["Scp-ClientType"] = CLIENT_TYPE
        request.headers["Scp-AccountId"] = self.account_id
        request.headers["Scp-Signature"] = sign(
            method=request.method,
            url=str(request.url),
            timestamp=timestamp,
            access_key=self.access_key,
            account_id=self.account_id,
            secret_key=self._secret_key,
        )
        yield request
