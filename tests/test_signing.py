"""The cloud API signer: the spec's check vector, through `sign` and through `ScpAuth`.

The client is an `httpx.AsyncClient`, so `ScpAuth` is driven through its async flow here;
it does no I/O, and its sync flow signs the same (one test holds them together).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.scp import ScpAuth, sign

# The check vector of docs/scp-api.md ("The signature", "Check vector").
URL = (
    "https://virtualserver.kr-west1.e.samsungsdscloud.com"
    "/v1/images/70a599e0-31e7-49b7-b260-868f441e862b/members"
)
ACCESS_KEY = "AKEXAMPLE1234567890"
SECRET_KEY = "SECRETKEY-EXAMPLE-0123456789abcdef"
TIMESTAMP = "1700000000000"
SIGNATURE = "gj0eNmeaLpwvDjB9rCiW0MHEmFny3qp0Sq1TjyE/4Is="


def signed(auth: ScpAuth, method: str = "POST", url: str = URL) -> httpx.Request:
    """The request as an `AsyncClient`'s auth flow hands it to the transport."""
    return through_async_flow(auth, httpx.Request(method, url))


def through_async_flow(auth: ScpAuth, request: httpx.Request) -> httpx.Request:
    async def first() -> httpx.Request:
        return await anext(auth.async_auth_flow(request))

    return asyncio.run(first())


def frozen(seconds: float = 1700000000.0) -> ScpAuth:
    return ScpAuth(ACCESS_KEY, SECRET_KEY, clock=lambda: seconds)


def test_sign_matches_the_check_vector() -> None:
    assert (
        sign(
            method="POST",
            url=URL,
            timestamp=TIMESTAMP,
            access_key=ACCESS_KEY,
            account_id="",
            secret_key=SECRET_KEY,
        )
        == SIGNATURE
    )


def test_sign_upper_cases_the_method() -> None:
    values = {
        "url": URL,
        "timestamp": TIMESTAMP,
        "access_key": ACCESS_KEY,
        "account_id": "",
        "secret_key": SECRET_KEY,
    }
    assert sign(method="post", **values) == SIGNATURE


def test_auth_sets_every_gateway_header_with_the_check_vector() -> None:
    request = signed(frozen())

    assert request.headers["Scp-Accesskey"] == ACCESS_KEY
    assert request.headers["Scp-Timestamp"] == TIMESTAMP
    assert request.headers["Scp-ClientType"] == "Openapi"
    # Sent even when empty, as the official SDK does.
    assert "Scp-AccountId" in request.headers
    assert request.headers["Scp-AccountId"] == ""
    assert request.headers["Scp-Signature"] == SIGNATURE


def test_auth_does_not_touch_method_url_or_body() -> None:
    request = httpx.Request("POST", URL, json={"member_id": "a8f10467abfc4b87b64614ab36eb9ae4"})
    body = request.read()

    out = through_async_flow(frozen(), request)

    assert (out.method, str(out.url), out.read()) == ("POST", URL, body)
    # The body is not signed: the vector holds with a body too.
    assert out.headers["Scp-Signature"] == SIGNATURE


def test_each_attempt_is_signed_afresh_with_the_time_of_that_attempt() -> None:
    now = [1700000000.0]
    auth = ScpAuth(ACCESS_KEY, SECRET_KEY, clock=lambda: now[0])

    first = signed(auth)
    now[0] += 1.5
    second = signed(auth)

    assert first.headers["Scp-Timestamp"] == "1700000000000"
    assert second.headers["Scp-Timestamp"] == "1700000001500"
    assert first.headers["Scp-Signature"] == SIGNATURE
    assert second.headers["Scp-Signature"] != SIGNATURE
    assert second.headers["Scp-Signature"] == sign(
        method="POST",
        url=URL,
        timestamp="1700000001500",
        access_key=ACCESS_KEY,
        account_id="",
        secret_key=SECRET_KEY,
    )


def test_an_account_id_is_sent_and_signed() -> None:
    account = "0f0e0d0c0b0a49388776655443322110"
    auth = ScpAuth(ACCESS_KEY, SECRET_KEY, account, clock=lambda: 1700000000.0)

    request = signed(auth)

    assert request.headers["Scp-AccountId"] == account
    assert request.headers["Scp-Signature"] != SIGNATURE
    assert request.headers["Scp-Signature"] == sign(
        method="POST",
        url=URL,
        timestamp=TIMESTAMP,
        access_key=ACCESS_KEY,
        account_id=account,
        secret_key=SECRET_KEY,
    )


@pytest.mark.parametrize(
    "url",
    [
        URL + "?limit=10&marker=abc",
        # Escaped once on the wire, and signed exactly as sent (no second encoding).
        "https://virtualserver.kr-west1.e.samsungsdscloud.com/v1/images/a%2Fb/members?q=a%20b",
    ],
)
def test_the_url_is_signed_as_sent_query_included(url: str) -> None:
    request = signed(frozen(), "GET", url)

    assert str(request.url) == url
    assert request.headers["Scp-Signature"] == sign(
        method="GET",
        url=url,
        timestamp=TIMESTAMP,
        access_key=ACCESS_KEY,
        account_id="",
        secret_key=SECRET_KEY,
    )
    without_query = sign(
        method="GET",
        url=url.partition("?")[0],
        timestamp=TIMESTAMP,
        access_key=ACCESS_KEY,
        account_id="",
        secret_key=SECRET_KEY,
    )
    assert request.headers["Scp-Signature"] != without_query


def test_method_is_part_of_the_signature() -> None:
    assert signed(frozen(), "GET").headers["Scp-Signature"] != SIGNATURE
    assert signed(frozen(), "POST").headers["Scp-Signature"] == SIGNATURE


def test_repr_shows_the_access_key_but_never_the_secret() -> None:
    auth = ScpAuth(ACCESS_KEY, SECRET_KEY, "acct-1")

    shown = repr(auth)

    assert SECRET_KEY not in shown
    assert ACCESS_KEY in shown and "acct-1" in shown
    assert SECRET_KEY not in str(auth)


def test_the_sync_flow_signs_exactly_as_the_async_one() -> None:
    names = ("Scp-Accesskey", "Scp-Timestamp", "Scp-ClientType", "Scp-AccountId", "Scp-Signature")
    auth = ScpAuth(ACCESS_KEY, SECRET_KEY, "acct-1", clock=lambda: 1700000000.0)

    by_sync = next(auth.sync_auth_flow(httpx.Request("DELETE", URL + "/m1")))
    by_async = through_async_flow(auth, httpx.Request("DELETE", URL + "/m1"))

    assert [by_sync.headers[n] for n in names] == [by_async.headers[n] for n in names]


def test_an_async_client_sends_the_check_vector() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async def post() -> None:
        async with httpx.AsyncClient(
            auth=frozen(), transport=httpx.MockTransport(answer)
        ) as client:
            await client.post(URL, json={"member_id": "a8f10467abfc4b87b64614ab36eb9ae4"})

    asyncio.run(post())

    [request] = sent
    assert str(request.url) == URL
    assert request.headers["Scp-Timestamp"] == TIMESTAMP
    assert request.headers["Scp-Signature"] == SIGNATURE
