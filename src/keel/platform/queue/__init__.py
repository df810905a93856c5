"""Durable background jobs kept in the application database (see ``enqueue.py`` for why)."""

from keel.platform.queue.context import JobContext, JobFailed, Retry
from keel.platform.queue.enqueue import enqueue, enqueue_many
from keel.platform.queue.models import Job, Status
from keel.platform.queue.registry import registry, task

__all__ = ["Job", "JobContext", "JobFailed", "Retry", "Status", "enqueue", "enqueue_many", "registry", "task"]
