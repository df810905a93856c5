"""The operator's outbound policy (KEEL_WEBHOOKS_ALLOW_*) applied to a URL a client gave."""

from __future__ import annotations

from keel.platform.http.errors import ValidationFailed
from keel.platform.outbound import ssrf
from keel.settings import Settings


async def require_callable(settings: Settings, url: str, *, field: str) -> None:
    """422 on ``field`` unless Keel may call ``url``: scheme, syntax and every address its
    host resolves to (deliveries check the addresses again when they connect).

    It looks the host up (up to ``ssrf.RESOLVE_TIMEOUT``): call it before a request's
    transaction opens — on SQLite that transaction holds the database's write lock.
    """
    try:
        await ssrf.resolve(
            url,
            allow_private=settings.webhooks_allow_private_targets,
            allow_http=settings.allows_http_webhooks,
        )
    except ssrf.TargetRefused as exc:
        raise ValidationFailed(exc.reason, field=field) from None
