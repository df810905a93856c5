from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from keel.jobs.schemas import AsyncOptions
from keel.platform.http.envelope import (
    FILLED_LINE_PATTERN,
    LINE_PATTERN,
    TEXT_PATTERN,
    Schema,
    not_null_in_schema,
)
from keel.products.currencies import ISO_4217

MAX_PRICE = Decimal("9999999999.99")
MAX_STOCK = 2_147_483_647
MAX_TAGS = 10

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=FILLED_LINE_PATTERN)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=TEXT_PATTERN)]
Category = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=FILLED_LINE_PATTERN)
]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=FILLED_LINE_PATTERN)
]


def _price_input(value: Any) -> Any:
    """A JSON number is a binary float: 0.57 arrives as 0.5700000000000001. Take it as
    the 2-place decimal it is within rounding error of; anything else is refused below."""
    if isinstance(value, float) and math.isfinite(value):
        rounded = round(value, 2)
        if abs(rounded - value) <= 4 * math.ulp(value):
            return Decimal(f"{rounded:.2f}")
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_price_input),
    Field(ge=0, le=MAX_PRICE, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,10}(\.\d{1,2})?$"},
                {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
            ]
        }
    ),
]


def _count(value: Any) -> Any:
    # JSON true/false and "3" are not a count; 3.0 is (JSON Schema calls it an integer).
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


Stock = Annotated[int, Field(ge=0, le=MAX_STOCK), BeforeValidator(_count)]


def _currency(value: str) -> str:
    if value not in ISO_4217:
        raise PydanticCustomError("currency", "{code!r} is not an ISO 4217 currency code.", {"code": value})
    return value


Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$"),
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217)}),
]


def _distinct(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(_distinct)]


def _rfc3339(value: Any) -> Any:
    # pydantic would also read "0.5" as seconds since 1970: a query string is a date here.
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise PydanticCustomError(
            "datetime_format", "Expected an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z"
        )
    return value


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
Instant = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339), WithJsonSchema({"type": "string", "format": "date-time"})
]


def cents(price: Decimal) -> int:
    return int(price.scaleb(2))


def format_cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


class ProductCreate(Schema):
    """A new product, or (``PUT``) the whole of an existing one: omitted optional fields
    take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="1..100 characters (surrounding spaces are trimmed).")
    description: Description | None = Field(None, description="Up to 2,000 characters.")
    price: Price = Field(
        description="Non-negative, at most 2 decimal places, at most 9,999,999,999.99. "
        'Send a string (`"12.50"`) to avoid binary floating point; a number is accepted.'
    )
    currency: Currency = Field(description="ISO 4217 code, upper case (`EUR`, `USD`, …).")
    stock: Stock = Field(0, description="Units in stock, >= 0.")
    category: Category | None = Field(None, description="1..50 characters.")
    tags: Tags = Field(
        default_factory=list, description="At most 10 tags of 1..50 characters; repeats are dropped."
    )
    folder_id: uuid.UUID | None = Field(
        None, description="Folder to file the product in; you need editor access to it."
    )


class ProductUpdate(Schema):
    """A partial change: only the fields sent change. ``null`` clears `description`,
    `category` and `folder_id`; the other fields cannot be null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, json_schema_extra=not_null_in_schema, description="1..100 characters.")
    description: Description | None = Field(None, description="Up to 2,000 characters; null clears it.")
    price: Price | None = Field(None, json_schema_extra=not_null_in_schema, description="See ProductCreate.")
    currency: Currency | None = Field(
        None, json_schema_extra=not_null_in_schema, description="ISO 4217 code."
    )
    stock: Stock | None = Field(None, json_schema_extra=not_null_in_schema, description="Units in stock.")
    category: Category | None = Field(None, description="1..50 characters; null clears it.")
    tags: Tags | None = Field(None, json_schema_extra=not_null_in_schema, description="Replaces all tags.")
    folder_id: uuid.UUID | None = Field(None, description="Move to this folder; null takes it out of any.")

    @field_validator("name", "price", "currency", "stock", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; omit the field to leave it unchanged")
        return value


class Product(Schema):
    """A product as the API shows it."""

    id: uuid.UUID = Field(description="Product id (UUIDv7).")
    name: str = Field(description="Product name.")
    description: str | None = Field(description="Free text.")
    price: str = Field(pattern=r"^\d+\.\d{2}$", description="Decimal with 2 places, as a string.")
    currency: str = Field(description="ISO 4217 code.")
    stock: int = Field(description="Units in stock.")
    category: str | None = Field(description="Category, if any.")
    tags: list[str] = Field(description="Tags, in the order given.")
    folder_id: uuid.UUID | None = Field(description="Folder holding the product, if any.")
    owner_id: uuid.UUID = Field(description="The user who owns the product.")
    version: int = Field(description="Incremented by every change; the ETag is derived from it.")
    created_at: datetime = Field(description="When the product was created.")
    updated_at: datetime = Field(description="When the product last changed.")


class ProductFilters(Schema):
    """Query filters of product lists and exports, combined with AND."""

    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=100, pattern=LINE_PATTERN)] | None
    ) = Field(None, description="Case-insensitive substring of the name or the description.")
    category: Category | None = Field(None, description="Exact category.")
    min_price: Price | None = Field(None, description="Price >= this.")
    max_price: Price | None = Field(None, description="Price <= this.")
    folder_id: uuid.UUID | None = Field(None, description="Only products directly in this folder.")
    tag: Tag | None = Field(None, description="Only products with this tag (exact match).")
    in_stock: bool | None = Field(None, description="true: stock > 0; false: stock = 0.")
    created_after: Instant | None = Field(None, description="Created at or after (RFC 3339, with an offset).")
    created_before: Instant | None = Field(None, description="Created before (RFC 3339, with an offset).")


ExportFormat = Literal["csv", "ndjson"]


class ExportJobFilters(ProductFilters):
    """The product list's filters, in a JSON body: an unknown name is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ExportJobCreate(AsyncOptions):
    """An export written to a file by a job (``products.export``), for large catalogues."""

    format: ExportFormat = Field("csv", description="csv or ndjson (one JSON object per line).")
    filters: ExportJobFilters = Field(
        default_factory=ExportJobFilters,
        description="As the query parameters of `GET /products` (and `/products/export`).",
    )
