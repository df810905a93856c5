"""Sorted lists in two modes: page mode (``?page=&per_page=``, with a total) and cursor
mode (``?cursor=&per_page=``, keyset, no total).

A resource declares its sortable fields once (:class:`Sorting`); the dependency made by
:func:`list_params` parses ``sort=-price,name`` (or ``sort_by=&sort_order=``), the page
size and the cursor, refusing anything unknown with 422. Ties are always broken by the
row id, so pages are stable even when many rows share a sort value.

A cursor is the sort order and the last row's sort values, base64url-encoded JSON: it
carries no secret (visibility is enforced by the query, whatever a cursor says), so it
is validated, not signed. A cursor made for another sort order is refused.
"""

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

import orjson
import pydantic_core
from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, create_model
from sqlalchemy import ColumnElement, Row, SQLColumnExpression, and_, bindparam, or_, tuple_
from starlette.responses import Response

from keel.platform.http.envelope import Link, RawJSON, ok
from keel.platform.http.errors import ValidationFailed
from keel.platform.http.etag import PRIVATE_NO_CACHE, none_match, weak_etag
from keel.platform.http.pagination import (
    DEFAULT_PER_PAGE,
    MAX_PAGE,
    MAX_PER_PAGE,
    Page,
    PageParams,
    link_header,
    quote_path,
)

R = TypeVar("R")
MAX_CURSOR_LENGTH = 1024
MAX_SORT_LENGTH = 200
FieldKind = Literal["str", "int", "datetime"]
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class SortField:
    column: SQLColumnExpression[Any]
    kind: FieldKind

    @property
    def key(self) -> str:
        """The column's name in a result row."""
        return str(getattr(self.column, "key"))  # noqa: B009 - not every expression type declares it


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    descending: bool

    def __str__(self) -> str:
        return f"-{self.name}" if self.descending else self.name


class Sorting:
    """The sortable fields of one resource and its default order."""

    def __init__(
        self, fields: Mapping[str, SortField], *, default: str, tiebreak: SQLColumnExpression[Any]
    ) -> None:
        self.fields = dict(fields)
        self.default = default
        self.tiebreak = tiebreak
        names = "|".join(re.escape(name) for name in self.fields)
        # Documented in OpenAPI, so generated clients and fuzzers know what is valid.
        self.pattern = rf"^-?({names})(,-?({names}))*$"

    def parse(self, sort: str | None, sort_by: str | None, sort_order: str | None) -> tuple[SortKey, ...]:
        if sort is not None and (sort_by is not None or sort_order is not None):
            raise ValidationFailed("Use either sort or sort_by/sort_order, not both.", field="sort")
        if sort_by is not None:
            return (SortKey(self._known(sort_by, "sort_by"), sort_order == "desc"),)
        if sort_order is not None:
            raise ValidationFailed("sort_order needs sort_by.", field="sort_order")
        keys: list[SortKey] = []
        seen: set[str] = set()
        for part in (sort or self.default).split(","):
            descending = part.startswith("-")
            name = self._known(part.removeprefix("-").strip(), "sort")
            if name not in seen:  # a repeated field adds nothing to the order
                seen.add(name)
                keys.append(SortKey(name, descending))
        return tuple(keys)

    def _known(self, name: str, parameter: str) -> str:
        if name not in self.fields:
            allowed = ", ".join(self.fields)
            raise ValidationFailed(f"Cannot sort by {name!r}; sortable fields: {allowed}.", field=parameter)
        return name

    def order_by(self, keys: Sequence[SortKey]) -> list[Any]:
        clauses = [
            self.fields[k.name].column.desc() if k.descending else self.fields[k.name].column for k in keys
        ]
        last_descending = keys[-1].descending
        clauses.append(self.tiebreak.desc() if last_descending else self.tiebreak)
        return clauses

    def after(self, keys: Sequence[SortKey], values: Sequence[Any], last_id: Any) -> ColumnElement[bool]:
        """Rows strictly after the cursor position in this order (keyset predicate); the
        values and id may be bound parameters."""
        columns = [self.fields[k.name].column for k in keys] + [self.tiebreak]
        directions = [k.descending for k in keys] + [keys[-1].descending]
        bounds = [*values, last_id]
        if all(directions) or not any(directions):
            # One row-value comparison: what a composite index can seek to directly.
            row, bound = tuple_(*columns), tuple_(*bounds)
            return row < bound if directions[0] else row > bound
        alternatives = []
        for index, column in enumerate(columns):
            equal = [columns[i] == bounds[i] for i in range(index)]
            step = column < bounds[index] if directions[index] else column > bounds[index]
            alternatives.append(and_(*equal, step))
        return or_(*alternatives)

    def after_bound(self, keys: Sequence[SortKey]) -> ColumnElement[bool]:
        """:meth:`after` with the cursor's values as bound parameters (named as
        :meth:`cursor_bindings` binds them): for statements built once per order."""
        columns = [self.fields[k.name].column for k in keys]
        # Typed as their columns: SQLite needs datetimes and ids converted on the way in.
        types = [getattr(column, "type") for column in [*columns, self.tiebreak]]  # noqa: B009
        values = [bindparam(f"after_{i}", type_=type_) for i, type_ in enumerate(types[:-1])]
        return self.after(keys, values, bindparam("after_id", type_=types[-1]))

    def cursor_bindings(self, cursor: str, keys: Sequence[SortKey]) -> dict[str, Any]:
        """The parameters of :meth:`after_bound` for a request's cursor."""
        values, last_id = self.decode_cursor(cursor, keys)
        return {**{f"after_{i}": value for i, value in enumerate(values)}, "after_id": last_id}

    # --- Cursors -----------------------------------------------------------------

    def after_cursor(self, cursor: str | None, keys: Sequence[SortKey]) -> ColumnElement[bool] | None:
        """The keyset predicate for a request's cursor (None for the first page)."""
        if not cursor:
            return None
        values, last_id = self.decode_cursor(cursor, keys)
        return self.after(keys, values, last_id)

    def cut(self, rows: list[R], keys: Sequence[SortKey], per_page: int) -> tuple[list[R], str | None]:
        """``per_page + 1`` rows fetched → the page, and the next page's cursor if the
        extra row shows there is one. Rows are SQLAlchemy rows or asyncpg records (which
        look values up by column name themselves)."""
        if len(rows) <= per_page:
            return rows, None
        rows = rows[:per_page]
        last: Any = rows[-1]
        return rows, self.encode_cursor(keys, last._mapping if isinstance(last, Row) else last)

    def encode_cursor(self, keys: Sequence[SortKey], row: Mapping[Any, Any]) -> str:
        """The cursor pointing after ``row`` (which holds the sort columns and the id)."""
        fields = [self.fields[key.name] for key in keys]
        values = [_dump_value(row[field.key], field.kind) for field in fields]
        raw = orjson.dumps([",".join(map(str, keys)), values, row[getattr(self.tiebreak, "key")].hex])  # noqa: B009
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def decode_cursor(self, cursor: str, keys: Sequence[SortKey]) -> tuple[list[Any], uuid.UUID]:
        """The sort values and id of the row a cursor points after; 422 if it is not one
        this list made for this order."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            order, values, last_id = orjson.loads(raw)
            if order != ",".join(map(str, keys)) or not isinstance(values, list) or len(values) != len(keys):
                raise ValueError("cursor made for another order")
            parsed = [
                _load_value(value, self.fields[key.name].kind)
                for key, value in zip(keys, values, strict=True)
            ]
            return parsed, uuid.UUID(hex=last_id)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise ValidationFailed(
                "The cursor is not valid for this list and order; start again without it.", field="cursor"
            ) from None


def _dump_value(value: Any, kind: FieldKind) -> Any:
    return value.isoformat() if kind == "datetime" else value


def _load_value(value: Any, kind: FieldKind) -> Any:
    if kind == "datetime" and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str) and len(value) <= MAX_CURSOR_LENGTH:
        return value
    raise ValueError(f"not a {kind}")


@dataclass(frozen=True, slots=True)
class ListParams:
    """What a list request asked for. ``cursor`` is None in page mode; "" asks for the
    first page in cursor mode."""

    page: PageParams
    sort: tuple[SortKey, ...]
    cursor: str | None = None

    @property
    def per_page(self) -> int:
        return self.page.per_page


_LIST_KEYS = frozenset({"page", "per_page", "cursor"})


class _ListFields(BaseModel):
    page: int | None
    per_page: int
    cursor: str | None
    sort: str | None
    sort_by: str | None
    sort_order: SortOrder | None


def _list_model(sorting: Sorting) -> type[_ListFields]:
    """:func:`list_params`' parameters, for this list's sort fields, as one model."""
    fields = ", ".join(sorting.fields)
    return create_model(
        "ListParameters",
        __base__=_ListFields,
        page=(int | None, Field(None, ge=1, le=MAX_PAGE, description="Page number, from 1 (page mode).")),
        per_page=(
            int,
            Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE, description="Items per page (1..100)."),
        ),
        cursor=(
            str | None,
            Field(
                None,
                max_length=MAX_CURSOR_LENGTH,
                pattern=r"^[A-Za-z0-9_-]*$",
                description="Cursor (keyset) mode: empty for the first page, then `meta.pagination"
                ".next_cursor`. No total is counted. Not combinable with `page`.",
            ),
        ),
        sort=(
            str | None,
            Field(
                None,
                max_length=MAX_SORT_LENGTH,
                pattern=sorting.pattern,
                description=f"Comma-separated fields, `-` for descending: {fields}. "
                f"Default `{sorting.default}`; ties are broken by id.",
            ),
        ),
        sort_by=(str | None, Field(None, max_length=50, description=f"One field to sort by ({fields}).")),
        sort_order=(SortOrder | None, Field(None, description="Direction for `sort_by`.")),
    )


def list_params(sorting: Sorting) -> Callable[..., Coroutine[Any, Any, ListParams]]:
    """The dependency that parses one resource's list parameters."""
    model = _list_model(sorting)

    async def parse(request: Request, listed: Annotated[model, Query()]) -> ListParams:  # type: ignore[valid-type]
        return _list_params(request, sorting, listed)

    return parse


def _list_params(request: Request, sorting: Sorting, listed: _ListFields) -> ListParams:
    if listed.page is not None and listed.cursor is not None:
        raise ValidationFailed("Use either page or cursor, not both.", field="cursor")
    keys = sorting.parse(listed.sort, listed.sort_by, listed.sort_order)
    query = tuple((k, v) for k, v in request.query_params.multi_items() if k not in _LIST_KEYS)
    page = PageParams(page=listed.page or 1, per_page=listed.per_page, path=request.url.path, query=query)
    return ListParams(page=page, sort=keys, cursor=listed.cursor)


F = TypeVar("F", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ListRequest(Generic[F]):
    """A list request's filters and list parameters."""

    filters: F
    params: ListParams


class ListQuery(Generic[F]):
    """The dependency of a hot list: its filters (a model) and list parameters, validated
    from the query string in two model validations.

    FastAPI validates declared query parameters one at a time, in Python, and the
    product list has fifteen: that was a twentieth of the request's CPU. The parameters
    are the same (``list_params`` and a ``Query()`` model); declared in the OpenAPI
    document through the route's ``openapi_extra=query.openapi``, and errors are the same
    422s, located in the query.
    """

    def __init__(self, sorting: Sorting, filters: type[F]) -> None:
        self.sorting = sorting
        self.filters = filters
        self.list_model = _list_model(sorting)
        self.openapi = {"parameters": [*_query_parameters(self.list_model), *_query_parameters(filters)]}

    async def __call__(self, request: Request) -> ListRequest[F]:
        given = dict(request.query_params)  # the last value of a repeated name, as FastAPI takes it
        errors: list[Any] = []
        try:
            listed = self.list_model.model_validate(given)
        except ValidationError as exc:
            errors += exc.errors(include_url=False)
        try:
            filters = self.filters.model_validate(given)
        except ValidationError as exc:
            errors += exc.errors(include_url=False)
        if errors:
            raise RequestValidationError([{**error, "loc": ("query", *error["loc"])} for error in errors])
        return ListRequest(filters, _list_params(request, self.sorting, listed))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters for a model's fields, as FastAPI writes them."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise TypeError(f"{model.__name__}: query parameters must not need shared schemas")
    parameters = []
    for name, field in model.model_fields.items():
        parameter: dict[str, Any] = {
            "name": field.alias or name,
            "in": "query",
            "required": field.is_required(),
            "schema": schema["properties"][field.alias or name],
        }
        if field.description:
            parameter["description"] = field.description
        parameters.append(parameter)
    return parameters


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One page in cursor mode: the rows, and the cursor of the next page if any."""

    items: list[Any]
    next_cursor: str | None
    params: PageParams

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "pagination": {
                "per_page": self.params.per_page,
                "next_cursor": self.next_cursor,
                "has_next": self.next_cursor is not None,
            }
        }

    @property
    def links(self) -> list[Link]:
        links = [Link(href=self._href(""), rel="first")]
        if self.next_cursor is not None:
            links.append(Link(href=self._href(self.next_cursor), rel="next"))
        return links

    def _href(self, cursor: str) -> str:
        query = urlencode([*self.params.query, ("cursor", cursor), ("per_page", str(self.params.per_page))])
        return f"{quote_path(self.params.path)}?{query}"


def list_response(request: Request, page: Page[Any] | CursorPage) -> Response:
    """The envelope for a page of JSON-ready items, with the ``Link`` header and a weak
    ETag over the page (``If-None-Match`` → 304)."""
    data = RawJSON(pydantic_core.to_json(page.items))
    meta = page.meta
    links = page.links
    etag = weak_etag(data + orjson.dumps(meta))
    headers = {"Link": link_header(links), "ETag": etag, "Cache-Control": PRIVATE_NO_CACHE}
    if none_match(request, etag):
        return Response(status_code=304, headers=headers)
    return ok(data, links=links, meta=meta, headers=headers)
