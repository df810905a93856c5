"""The memory backend's glob selects exactly what Redis's ``MATCH`` selects."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from keel.platform.caching._glob import glob_regex

CANDIDATES = [
    "product:1:alice",
    "product:12:bob",
    "products:1:x",
    "folder:1:alice",
    "a*b",
    "a\\b",
    "[x]",
    "x",
    "product:^:c",
    "ab]",
]
PATTERNS = [
    "*",
    "product:*",
    "product:?:*",
    "*:alice",
    "product:1[0-9]:*",
    "[^p]*",
    "[a-f]*",
    "a\\*b",
    "\\[x\\]",
    "[x]",
    "x[",
    "product:[^1]*",
    "ab]",
]


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_a_pattern_matches_the_same_keys_as_redis(
    pattern: str, redis_client: Redis, redis_prefix: str
) -> None:
    name = f"{redis_prefix}glob:{uuid.uuid4().hex}"
    await redis_client.zadd(name, dict.fromkeys(CANDIDATES, 0))
    try:
        by_redis = sorted(
            [member.decode() async for member, _ in redis_client.zscan_iter(name, match=pattern)]
        )
    finally:
        await redis_client.delete(name)
    regex = glob_regex(pattern)
    assert sorted(c for c in CANDIDATES if regex.fullmatch(c)) == by_redis
