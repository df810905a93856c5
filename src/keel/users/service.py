"""Accounts: creation (registration, bootstrap admin) and profile changes."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.event_types import EventType
from keel.platform.events import emit
from keel.platform.http.errors import Conflict, NotFound, ValidationFailed
from keel.platform.security.passwords import Passwords, password_problem
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.users import repository
from keel.users.models import Role, User
from keel.users.schemas import ProfileUpdate


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create(
    session: AsyncSession,
    passwords: Passwords,
    *,
    email: str,
    password: str,
    full_name: str,
    role: Role = Role.USER,
) -> User:
    """Create an account; 409 when the e-mail is taken, 422 when the password is weak."""
    email = normalize_email(email)
    problem = password_problem(password, email)
    if problem is not None:
        raise ValidationFailed(problem, field="password")
    if await repository.get_by_email(session, email) is not None:
        raise Conflict("An account with this e-mail address already exists.", field="email")
    user = User(
        email=email,
        full_name=full_name,
        password_hash=await passwords.hash(password),
        role=role.value,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # Registered concurrently between the check and the insert.
        raise Conflict("An account with this e-mail address already exists.", field="email") from None
    await emit(
        session,
        EventType.USER_CREATED,
        {
            "id": user.id,
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role,
            "created_at": user.created_at,
        },
        subject_type="user",
        subject_id=user.id,
        actor_id=user.id,
    )
    return user


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await repository.get_by_email(session, normalize_email(email))


async def get(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get(session, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


async def acting_principal(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """A user as a principal with their role's permissions now, for work done on their
    behalf later (a job, a webhook, an open socket); None when the account is gone or
    disabled."""
    user = await repository.get(session, user_id)
    if user is None or not user.is_active:
        return None
    return Principal(
        user_id=user.id, role=user.role, plan=user.plan, permissions=effective_permissions(user.role)
    )


async def update_profile(session: AsyncSession, user: User, changes: ProfileUpdate) -> User:
    if changes.full_name is not None:
        user.full_name = changes.full_name
    await session.flush()
    return user
