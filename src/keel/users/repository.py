from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from keel.platform.http.pagination import Page, PageParams, paginate
from keel.users.models import Role, User


async def get(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email))
    return result.scalar_one_or_none()


# --- Admin side ---------------------------------------------------------------------


async def search(
    session: AsyncSession,
    params: PageParams,
    *,
    role: str | None = None,
    plan: str | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> Page[User]:
    """One page of accounts, newest first."""
    conditions: list[ColumnElement[bool]] = []
    if role is not None:
        conditions.append(User.role == role)
    if plan is not None:
        conditions.append(User.plan == plan)
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    if q:
        # autoescape: a % or _ typed by the admin matches itself, not "anything".
        conditions.append(
            User.email.icontains(q, autoescape=True) | User.full_name.icontains(q, autoescape=True)
        )
    statement = select(User).where(*conditions).order_by(User.created_at.desc(), User.id.desc())
    return await paginate(session, statement, params)


async def get_for_update(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The account, its row locked until the transaction ends (PostgreSQL; SQLite
    serialises writers for the whole transaction instead)."""
    return await session.get(User, user_id, with_for_update=True, populate_existing=True)


async def lock_active_admins(session: AsyncSession) -> list[uuid.UUID]:
    """Ids of the active admins, their rows locked until the transaction ends.

    Locked in id order, so two transactions doing this cannot deadlock; a second one
    waits for the first to commit and then sees its outcome (PostgreSQL re-checks the
    WHERE clause on rows changed meanwhile), so two concurrent demotions cannot both
    count the other admin.
    """
    result = await session.execute(
        select(User.id)
        .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return list(result.scalars())


async def count_by_role_and_status(session: AsyncSession) -> list[tuple[str, bool, int]]:
    """(role, is_active, accounts) for every combination present."""
    result = await session.execute(
        select(User.role, User.is_active, func.count()).group_by(User.role, User.is_active)
    )
    return [(role, bool(active), int(n)) for role, active, n in result]


async def count_by_plan(session: AsyncSession) -> dict[str, int]:
    result = await session.execute(select(User.plan, func.count()).group_by(User.plan))
    return {plan: int(n) for plan, n in result}


async def any_exist(session: AsyncSession) -> bool:
    return (await session.execute(select(User.id).limit(1))).first() is not None
