"""Page-mode pagination: ``?page=&per_page=`` in, ``meta.pagination``, links and a
``Link`` header out.

Usage in an endpoint::

    page = await service.list_things(session, principal, params=params)
    return page.response()

The total is counted by the database (``count(*)`` over the filtered query), never by
loading rows; the rows query is skipped when the page lies past the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple
from urllib.parse import quote, urlencode

from fastapi import Depends, Query, Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from keel.platform.http.envelope import Link, ok

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 100_000
_PAGE_KEYS = frozenset({"page", "per_page"})
# Characters RFC 3986 allows unescaped in a path; anything else is percent-encoded so
# the href is also a valid (latin-1) header value.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

T = TypeVar("T")
U = TypeVar("U")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True, slots=True)
class PageParams:
    """The requested page, and where the request was sent (to build the links)."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    path: str = ""
    # The request's other query parameters, in order, kept in every link.
    query: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def limit(self) -> int:
        return self.per_page


async def page_params(
    request: Request,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, Query(ge=1, le=MAX_PER_PAGE, description="Items per page (1..100).")
    ] = DEFAULT_PER_PAGE,
) -> PageParams:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool.
    return PageParams(
        page=page,
        per_page=per_page,
        path=request.url.path,
        query=tuple((k, v) for k, v in request.query_params.multi_items() if k not in _PAGE_KEYS),
    )


PageParamsDep = Annotated[PageParams, Depends(page_params)]


def page_count(total: int, per_page: int) -> int:
    return math.ceil(total / per_page) if total > 0 else 0


def page_meta(total: int, params: PageParams) -> dict[str, Any]:
    """``{"pagination": {total, page, per_page, pages, has_next, has_prev}}``."""
    pages = page_count(total, params.per_page)
    return {
        "pagination": {
            "total": total,
            "page": params.page,
            "per_page": params.per_page,
            "pages": pages,
            "has_next": params.page < pages,
            "has_prev": params.page > 1,
        }
    }


def quote_path(path: str) -> str:
    return quote(path, safe=_PATH_SAFE)


def page_href(params: PageParams, page: int) -> str:
    query = urlencode([*params.query, ("page", str(page)), ("per_page", str(params.per_page))])
    return f"{quote_path(params.path)}?{query}"


def page_links(total: int, params: PageParams) -> list[Link]:
    """``first``, ``prev`` (unless on page 1), ``next`` (unless on the last page), ``last``.

    An empty result still has a first and a last page (page 1); a page past the end
    links back to the real last page as its ``prev``.
    """
    last = max(page_count(total, params.per_page), 1)
    links = [Link(href=page_href(params, 1), rel="first")]
    if params.page > 1:
        links.append(Link(href=page_href(params, min(params.page - 1, last)), rel="prev"))
    if params.page < last:
        links.append(Link(href=page_href(params, params.page + 1), rel="next"))
    links.append(Link(href=page_href(params, last), rel="last"))
    return links


def link_header(links: Sequence[Link]) -> str:
    """The links as an RFC 8288 ``Link`` header value."""
    return ", ".join(f'<{link.href}>; rel="{link.rel}"' for link in links)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results with everything the envelope needs."""

    items: list[T]
    total: int
    params: PageParams

    @property
    def meta(self) -> dict[str, Any]:
        return page_meta(self.total, self.params)

    @property
    def links(self) -> list[Link]:
        return page_links(self.total, self.params)

    @property
    def headers(self) -> dict[str, str]:
        return {"Link": link_header(self.links)}

    def response(self) -> Response:
        """The envelope: items as ``data``, pagination in ``meta``, links in both places."""
        return ok(self.items, links=self.links, meta=self.meta, headers=self.headers)

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        return Page([convert(item) for item in self.items], self.total, self.params)


async def count(session: AsyncSession, statement: Select[*Ts]) -> int:
    """Rows the statement would return, counted by the database."""
    counted = select(func.count()).select_from(statement.order_by(None).subquery())
    return int((await session.execute(counted)).scalar_one())


async def paginate(session: AsyncSession, statement: Select[T], params: PageParams) -> Page[T]:
    """Run a one-entity ``select`` (already filtered and ordered) for one page."""
    total = await count(session, statement)
    if params.offset >= total:
        return Page([], total, params)
    result = await session.execute(statement.limit(params.limit).offset(params.offset))
    return Page(list(result.scalars()), total, params)
