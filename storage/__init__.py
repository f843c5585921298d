"""SQLite storage through sqlite-utils: one small class per concern.

The values its classes return are the domain's (`bot.sharing.values`): everyone,
storage included, imports them from there.
"""

from storage.audit import AuditLog
from storage.database import Database
from storage.drift import CloudMembers, ReconcileRuns
from storage.grants import Grants
from storage.images import Images
from storage.members import KnownMembers
from storage.oncall import OnCall
from storage.people import People
from storage.policies import ImagePolicies
from storage.requests import NewRequest, ShareRequests
from storage.rota import OnCallSchedules, Rota, SlackEmails
from storage.slack_messages import SlackMessages

__all__ = [
    "AuditLog",
    "CloudMembers",
    "Database",
    "Grants",
    "ImagePolicies",
    "Images",
    "KnownMembers",
    "NewRequest",
    "OnCall",
    "OnCallSchedules",
    "People",
    "ReconcileRuns",
    "Rota",
    "ShareRequests",
    "SlackEmails",
    "SlackMessages",
]
