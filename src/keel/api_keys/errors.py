from keel.platform.http.errors import Conflict, NotFound


class ApiKeyNotFound(NotFound):
    """Unknown, another user's, or (for revocation) already revoked: one answer for all."""

    default_message = "No such API key."


class ApiKeyLimitReached(Conflict):
    default_message = "Too many live API keys; revoke one first."
