"""The catalogue of domain events: what webhooks can subscribe to and what the real-time
streams carry. Each name is ``<resource>.<what happened>``."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DELETED = "product.deleted"
    PRODUCT_RESTORED = "product.restored"
    FOLDER_CREATED = "folder.created"
    FOLDER_UPDATED = "folder.updated"
    FOLDER_DELETED = "folder.deleted"
    USER_CREATED = "user.created"
    DOCUMENT_PROCESSED = "document.processed"
    DOCUMENT_FAILED = "document.failed"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    WEBHOOK_TEST = "webhook.test"
    ALERT_TRIGGERED = "alert.triggered"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_RESOLVED = "alert.resolved"


DESCRIPTIONS: dict[EventType, str] = {
    EventType.PRODUCT_CREATED: "A product was created; `data` is the product.",
    EventType.PRODUCT_UPDATED: "A product was replaced or changed; `data` is the product after the change.",
    EventType.PRODUCT_DELETED: "A product was deleted (soft); `data` is the product as it was.",
    EventType.PRODUCT_RESTORED: "An admin restored a deleted product; `data` is the product.",
    EventType.FOLDER_CREATED: "A folder was created; `data` is the folder.",
    EventType.FOLDER_UPDATED: "A folder was renamed, moved or changed; `data` is the folder after it.",
    EventType.FOLDER_DELETED: "A folder was deleted; `data` is the folder as it was.",
    EventType.USER_CREATED: "An account was registered; `data` is the user (sent to admins' subscriptions).",
    EventType.DOCUMENT_PROCESSED: "A document's text was extracted and chunked; `data` is the document.",
    EventType.DOCUMENT_FAILED: (
        "A document's text could not be extracted; `data` is the document with its `error`."
    ),
    EventType.JOB_SUCCEEDED: "A job of yours finished; `data` is the job with its result.",
    EventType.JOB_FAILED: "A job of yours failed for good; `data` is the job with its error.",
    EventType.WEBHOOK_TEST: "Sent by `POST /webhooks/{id}/test` to that subscription only.",
    EventType.ALERT_TRIGGERED: (
        "An alert opened, or an open one escalated; `data` is the alert (to holders of `alerts:read`)."
    ),
    EventType.ALERT_ACKNOWLEDGED: "Someone acknowledged an alert; `data` is the alert.",
    EventType.ALERT_RESOLVED: (
        "An alert was resolved, by hand or because its condition cleared; `data` is the alert."
    ),
}
