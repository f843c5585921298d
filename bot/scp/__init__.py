"""Samsung Cloud Platform's image-member API: signing, typed models and the client."""

from bot.scp.auth import ScpAuth, sign
from bot.scp.client import RetryPolicy, ScpClient, VersionReport, accept_language
from bot.scp.models import ImageMember, MemberStatus

__all__ = [
    "ImageMember",
    "MemberStatus",
    "RetryPolicy",
    "ScpAuth",
    "ScpClient",
    "VersionReport",
    "accept_language",
    "sign",
]
