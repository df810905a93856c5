"""Authenticated encryption for secrets that must be read back (TOTP seeds)."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context)
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str, *, context: bytes) -> str:
        raw = base64.urlsafe_b64decode(token.encode())
        return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context).decode()
