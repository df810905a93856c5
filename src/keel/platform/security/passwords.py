"""argon2id password hashing and the password policy (NIST SP 800-63B style).

The common-password list is Django's ``common-passwords.txt.gz`` (BSD-3-Clause, from
Royce Williams' list of 20,000 leaked passwords): length, not composition, is the rule,
and known-bad choices are refused.
"""

from __future__ import annotations

import gzip
import itertools
import secrets
import string
from functools import cache
from importlib import resources

import anyio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 128


class Passwords:
    """Hashes and verifies passwords off the event loop (argon2 releases the GIL)."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified against when the account does not exist: same parameters, same work,
        # so response time does not reveal which e-mail addresses have accounts.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True only for a real hash that matches; ``None`` burns the same time."""
        target = password_hash or self._dummy_hash
        try:
            await anyio.to_thread.run_sync(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files(__package__).joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(
        line.strip().lower() for line in gzip.decompress(data).decode().splitlines() if line.strip()
    )


def _is_repetitive(password: str) -> bool:
    """``aaaaaaaaaaaa``, ``abababababab``, ``abcabcabcabc``: a short unit repeated."""
    length = len(password)
    for period in range(1, length // 3 + 1):
        if length % period == 0 and password == password[:period] * (length // period):
            return True
    return len(set(password)) <= 2


def _step(a: str, b: str) -> int | None:
    # ASCII digits only: str.isdigit() is also true of "¹" or "②", which int() refuses.
    if a in string.digits and b in string.digits:
        return (int(b) - int(a)) % 10 if (int(b) - int(a)) % 10 in (1, 9) else None
    if a.isalpha() and b.isalpha():
        diff = ord(b.lower()) - ord(a.lower())
        return diff % 26 if diff % 26 in (1, 25) else None
    return None


def _is_sequential(password: str) -> bool:
    """``123456789012``, ``abcdefghijkl``, ``987654321098``: one step all the way."""
    steps = {_step(a, b) for a, b in itertools.pairwise(password)}
    return len(steps) == 1 and None not in steps


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is refused for the account ``email``, or ``None``."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"Use between {MIN_LENGTH} and {MAX_LENGTH} characters."
    lowered = password.lower()
    address = email.lower()
    if lowered in (address, address.split("@", 1)[0]):
        return "The password must not be your e-mail address."
    if _is_repetitive(password):
        return "The password must not be a repeated character or pattern."
    if _is_sequential(password):
        return "The password must not be a sequence such as 123456789012."
    if lowered in common_passwords():
        return "This password is too common; choose another."
    return None
