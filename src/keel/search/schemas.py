from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from keel.platform.http.envelope import FILLED_LINE_PATTERN, Schema

SearchText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=FILLED_LINE_PATTERN)
]
SearchType = Literal["chunks", "products"]


class ChunkHit(Schema):
    type: Literal["chunk"] = "chunk"
    document_id: uuid.UUID
    document_title: str
    chunk_index: int = Field(description="Which chunk of the document (from 0).")
    start_char: int = Field(description="Where the chunk starts in the document's text.")
    end_char: int
    snippet: str = Field(description="The best passage, matched words between `**` markers (plain text).")
    score: float = Field(description="Relevance: higher is better (comparable within one search).")


class ProductHit(Schema):
    type: Literal["product"] = "product"
    product_id: uuid.UUID
    name: str
    snippet: str = Field(
        description="The best passage of the name or the description, matched words between `**` markers."
    )
    score: float = Field(description="Relevance: higher is better (comparable within one search).")


SearchHit = Annotated[ChunkHit | ProductHit, Field(discriminator="type")]
