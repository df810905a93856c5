"""Authenticated encryption for secrets that must be read back (TOTP seeds, stored
responses that carry a secret)."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: bytes) -> str:
        return base64.urlsafe_b64encode(self.seal_bytes(plaintext.encode(), context=context)).decode()

    def open(self, token: str, *, context: bytes) -> str:
        return self.open_bytes(base64.urlsafe_b64decode(token.encode()), context=context).decode()

    def seal_bytes(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open_bytes(self, sealed: bytes, *, context: bytes) -> bytes:
        """Raises ``cryptography.exceptions.InvalidTag`` when the key or context differ."""
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)
