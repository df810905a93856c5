from keel.platform.http.errors import AuthenticationRequired, Forbidden, KeelError


class InvalidCredentials(KeelError):
    """Unknown e-mail, wrong password or inactive account: one answer for all three."""

    code = "INVALID_CREDENTIALS"
    status_code = 401
    default_message = "The e-mail address or password is incorrect."
    persist_changes = True  # the failure count and the audit row must survive


class AccountLocked(KeelError):
    # 429 rather than 423 (API.md allows both): clients and proxies already know to
    # wait for Retry-After on a 429.
    code = "ACCOUNT_LOCKED"
    status_code = 429
    default_message = "Too many failed logins; try again later."
    persist_changes = True


class MfaRequired(KeelError):
    code = "MFA_REQUIRED"
    status_code = 401
    default_message = "A one-time code (otp) is required for this account."
    persist_changes = True


class InvalidToken(KeelError):
    code = "INVALID_TOKEN"
    status_code = 401
    default_message = "The token is invalid or has been revoked."
    # A reused refresh token revokes its family: that must commit.
    persist_changes = True


class TokenExpired(KeelError):
    code = "TOKEN_EXPIRED"
    status_code = 401
    default_message = "The token has expired."


__all__ = [
    "AccountLocked",
    "AuthenticationRequired",
    "Forbidden",
    "InvalidCredentials",
    "InvalidToken",
    "MfaRequired",
    "TokenExpired",
]
