"""SQLite storage through sqlite-utils: one small class per concern.

The values its classes return are the domain's (`bot.sharing.values`); the names here
re-export them for tests, and nothing above storage imports them from here.
"""

from storage.audit import AuditLog
from storage.database import Database
from storage.drift import CloudMember, CloudMembers, ReconcileRun, ReconcileRuns
from storage.grants import Grant, Grants, Role
from storage.images import ImageRow, Images, StoredImage
from storage.members import KnownMember, KnownMembers
from storage.oncall import OnCall, OnCallShift
from storage.people import People
from storage.policies import ImagePolicies
from storage.requests import NewRequest, ShareRequests
from storage.rota import OnCallSchedules, Rota, RotaEntry, SlackEmails, SourceState
from storage.slack_messages import SlackData, SlackMessages

__all__ = [
    "AuditLog",
    "CloudMember",
    "CloudMembers",
    "Database",
    "Grant",
    "Grants",
    "ImagePolicies",
    "ImageRow",
    "Images",
    "KnownMember",
    "KnownMembers",
    "NewRequest",
    "OnCall",
    "OnCallSchedules",
    "OnCallShift",
    "People",
    "ReconcileRun",
    "ReconcileRuns",
    "Role",
    "Rota",
    "RotaEntry",
    "ShareRequests",
    "SlackData",
    "SlackEmails",
    "SlackMessages",
    "SourceState",
    "StoredImage",
]
