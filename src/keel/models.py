"""Every domain's ORM models, imported so ``Base.metadata`` is complete for Alembic."""

from keel.alerts.models import Alert, AlertRuleState
from keel.api_keys.models import ApiKey
from keel.audit.models import AuditLog
from keel.auth.models import AuthSession, LoginThrottle, RecoveryCode, RefreshToken
from keel.documents.models import Document, DocumentChunk
from keel.folders.models import Folder, FolderPath
from keel.platform.db.base import Base
from keel.platform.events import Event
from keel.platform.http.idempotency_store import IdempotencyRecord
from keel.platform.observability.stats_store import RequestStat
from keel.platform.queue.models import Job, Schedule
from keel.products.models import Product
from keel.realtime.tickets import SpentTicket
from keel.sharing.models import FolderGrant, ProductGrant
from keel.users.models import User
from keel.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "Alert",
    "AlertRuleState",
    "ApiKey",
    "AuditLog",
    "AuthSession",
    "Base",
    "Document",
    "DocumentChunk",
    "Event",
    "Folder",
    "FolderGrant",
    "FolderPath",
    "IdempotencyRecord",
    "Job",
    "LoginThrottle",
    "Product",
    "ProductGrant",
    "RecoveryCode",
    "RefreshToken",
    "RequestStat",
    "Schedule",
    "SpentTicket",
    "User",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
]
