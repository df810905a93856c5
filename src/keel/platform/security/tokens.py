"""Access tokens (JWT, one pinned algorithm) and opaque secrets (refresh tokens, keys).

RFC 8725: the algorithm comes from the server, never from the token; ``typ`` (header
``at+jwt``, RFC 9068, and a ``type`` claim) keeps token kinds apart; ``iss``, ``aud``,
``exp``, ``iat``, ``sub``, ``jti`` are required.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 - a claim value, not a secret
JWT_HEADER_TYPE = "at+jwt"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"]
# Access tokens verified lately, kept by their exact text (see AccessTokens.decode).
VERIFIED_TOKENS = 4096


def derive_key(secret: str, purpose: str) -> bytes:
    """A separate key per purpose from the one configured secret (HMAC-SHA256 as a KDF:
    the input is already high-entropy, so HKDF's extract step adds nothing)."""
    return hmac.new(secret.encode(), f"keel:{purpose}".encode(), hashlib.sha256).digest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: int


class AccessTokens:
    def __init__(self, *, key: bytes, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        # A client sends the same token on every request until it expires; verifying it
        # again (header, HMAC, claims) cost more than the rest of authentication. Only
        # tokens that verified are kept, and their expiry is checked on every use.
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._verify)

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "type": ACCESS_TOKEN_TYPE,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": JWT_HEADER_TYPE})

    def decode(self, token: str) -> AccessClaims:
        claims = self._verified(token)
        if claims.expires_at <= time.time():  # as PyJWT judges ``exp``, with no leeway
            raise TokenError("TOKEN_EXPIRED", "The access token has expired.")
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != JWT_HEADER_TYPE:
                raise TokenError("INVALID_TOKEN", "Not an access token.")
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
            if claims["type"] != ACCESS_TOKEN_TYPE:
                raise TokenError("INVALID_TOKEN", "Not an access token.")
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("TOKEN_EXPIRED", "The access token has expired.") from None
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
            raise TokenError("INVALID_TOKEN", "The access token is invalid.") from None
