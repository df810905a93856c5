"""The service's cache eviction is tied to the transaction's outcome."""

from __future__ import annotations

import uuid

from fastapi import FastAPI

from keel.api_keys import service
from keel.api_keys.schemas import ApiKeyCreate
from keel.audit.service import SYSTEM
from keel.platform.resources import Resources
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import sha256_hex
from tests.identity import Accounts


async def owner_with_cached_key(
    app: FastAPI, accounts: Accounts
) -> tuple[Resources, Principal, uuid.UUID, str]:
    """An owner, one of their keys (id, hash), and a principal cached for that key."""
    resources: Resources = app.state.resources
    account = await accounts.create(login=False)
    principal = Principal(
        user_id=account.id, role="user", plan="free", permissions=effective_permissions("user")
    )
    async with resources.db.sessionmaker() as session:
        key, secret = await service.create(
            session, principal, data=ApiKeyCreate(name="k", scopes=["profile:read"]), meta=SYSTEM
        )
        await session.commit()
    key_hash = sha256_hex(secret)
    resources.security.api_keys.put(key_hash, principal)
    return resources, principal, key.id, key_hash


async def test_revocation_evicts_the_cached_key_only_once_committed(app: FastAPI, accounts: Accounts) -> None:
    resources, principal, key_id, key_hash = await owner_with_cached_key(app, accounts)
    cache = resources.security.api_keys
    async with resources.db.sessionmaker() as session:
        await service.revoke(session, principal, key_id=key_id, principals=cache, meta=SYSTEM)
        assert cache.get(key_hash) is principal
        await session.commit()
    assert cache.get(key_hash) is None


async def test_rolled_back_revocation_keeps_the_key_cached(app: FastAPI, accounts: Accounts) -> None:
    resources, principal, key_id, key_hash = await owner_with_cached_key(app, accounts)
    cache = resources.security.api_keys
    async with resources.db.sessionmaker() as session:
        await service.revoke(session, principal, key_id=key_id, principals=cache, meta=SYSTEM)
        await session.rollback()
    assert cache.get(key_hash) is principal
    cache.evict(key_hash)
