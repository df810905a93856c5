"""TOTP (RFC 6238) second factor with single-use codes and recovery codes."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import pyotp
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from keel.auth import repository
from keel.auth.models import RecoveryCode
from keel.platform.security.crypto import SecretBox
from keel.platform.security.tokens import sha256_hex
from keel.users.models import User

ISSUER = "Keel"
RECOVERY_CODES = 10
_CONTEXT = b"mfa-totp"
# One step either side: a code typed as the 30 s window turns over still works.
_VALID_WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def seal(box: SecretBox, user: User, secret: str) -> str:
    return box.seal(secret, context=_CONTEXT + user.id.bytes)


def unseal(box: SecretBox, user: User) -> str | None:
    if user.mfa_secret is None:
        return None
    return box.open(user.mfa_secret, context=_CONTEXT + user.id.bytes)


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def accept_totp(user: User, secret: str, code: str, now: float | None = None) -> bool:
    """Accept a TOTP code once: its time step must be newer than the last accepted."""
    if not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    current_step = int(moment // totp.interval)
    for offset in range(-_VALID_WINDOW, _VALID_WINDOW + 1):
        step = current_step + offset
        if secrets.compare_digest(totp.at(step * totp.interval), code):
            if user.mfa_last_step is not None and step <= user.mfa_last_step:
                return False  # replayed
            user.mfa_last_step = step
            return True
    return False


async def delete_recovery_codes(session: AsyncSession, user: User) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


async def new_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    await delete_recovery_codes(session, user)
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=sha256_hex(code)) for code in codes)
    return codes


async def verify(session: AsyncSession, box: SecretBox, user: User, code: str, now: datetime) -> bool:
    """A TOTP code or an unused recovery code."""
    secret = unseal(box, user)
    if secret is None:
        return False
    if accept_totp(user, secret, code):
        return True
    return "-" in code and await repository.use_recovery_code(session, user.id, sha256_hex(code.lower()), now)
