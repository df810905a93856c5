"""Queries for grants. Grants of both kinds have the same shape; ``GrantModel`` picks the table."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.sharing.models import FolderGrant, ProductGrant
from keel.users.models import User

GrantModel = type[FolderGrant] | type[ProductGrant]


def _target(model: GrantModel) -> Any:
    return model.folder_id if model is FolderGrant else model.product_id  # type: ignore[union-attr]


async def list_grants(
    session: AsyncSession, model: GrantModel, resource_id: uuid.UUID
) -> list[Row[*tuple[Any, ...]]]:
    statement = (
        select(
            model.user_id,
            User.email,
            User.full_name,
            model.level,
            model.granted_by,
            model.created_at,
            model.updated_at,
        )
        .join(User, User.id == model.user_id)
        .where(_target(model) == resource_id)
        .order_by(model.created_at, model.id)
    )
    return list((await session.execute(statement)).all())


async def get_grant(
    session: AsyncSession, model: GrantModel, resource_id: uuid.UUID, user_id: uuid.UUID
) -> FolderGrant | ProductGrant | None:
    statement = select(model).where(_target(model) == resource_id, model.user_id == user_id)
    return cast(FolderGrant | ProductGrant | None, (await session.execute(statement)).scalar_one_or_none())


async def delete_grant(
    session: AsyncSession, model: GrantModel, resource_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    result = await session.execute(
        delete(model).where(_target(model) == resource_id, model.user_id == user_id).returning(model.id)
    )
    return result.one_or_none() is not None


async def active_user(session: AsyncSession, *, user_id: uuid.UUID | None, email: str | None) -> User | None:
    statement = select(User).where(User.is_active.is_(True))
    statement = (
        statement.where(User.id == user_id) if user_id is not None else statement.where(User.email == email)
    )
    return (await session.execute(statement)).scalar_one_or_none()
