"""Samsung Cloud Platform's image-member API: signing, typed models and the client."""

from bot.scp.auth import ScpAuth, sign
from bot.scp.client import RetryPolicy, ScpClient, VersionReport, accept_language
from bot.scp.models import Image, ImageMember, ImageStatus, MemberStatus, Visibility

__all__ = [
    "Image",
    "ImageMember",
    "ImageStatus",
    "MemberStatus",
    "RetryPolicy",
    "ScpAuth",
    "ScpClient",
    "VersionReport",
    "Visibility",
    "accept_language",
    "sign",
]
