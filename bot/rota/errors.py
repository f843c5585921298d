"""Why a rota could not be read.

    RotaError                 the source could not be read; the last rota stays
    ├── RotaRefused           the source refused the credentials or the address (401, 403, 404)
    ├── RotaRateLimited       the source asked to wait (429 with Retry-After)
    ├── RotaUnreachable       no answer, or a server error (timeouts, resets, 5xx)
    └── RotaMalformed         an answer that is not what the source's format says

Messages name the setting to look at, never a secret's value.
"""

from __future__ import annotations


class RotaError(Exception):
    """The source could not be read; the last rota stays."""

    def __init__(self, source: str, detail: str) -> None:
        self.source = source
        self.detail = detail
        super().__init__(f"{source}: {detail}")


class RotaRefused(RotaError):
    """The source refused the credentials or the address (401, 403, 404)."""


class RotaRateLimited(RotaError):
    """The source asked to wait `retry_after` seconds before the next read (429)."""

    def __init__(self, source: str, detail: str, retry_after: float) -> None:
        super().__init__(source, detail)
        self.retry_after = retry_after


class RotaUnreachable(RotaError):
    """No answer, or a server error (timeouts, resets, 5xx)."""


class RotaMalformed(RotaError):
    """An answer that is not what the source's format says."""
