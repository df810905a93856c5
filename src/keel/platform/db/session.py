"""The request owns the transaction: commit when the endpoint returns, roll back on error.

Services only ``flush()``; several of them can write in one request atomically.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.resources.db.sessionmaker() as session, session.begin():
        yield session


# scope="function": the commit runs after the endpoint returns and before the response
# is sent, so a failed commit becomes an error response instead of a lost write behind
# a 200.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
