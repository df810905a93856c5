"""document_chunks, products: stored search vectors (PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 17:05:00.000000

An index over an expression finds the matching rows, but ranking them (``ts_rank``) and
rechecking the heap compute ``to_tsvector`` again for every match: a common word over
10,000 chunks took seconds. A stored generated column is computed once per write.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_VECTOR = "to_tsvector('keel_search'::regconfig, text)"
PRODUCT_VECTOR = (
    "setweight(to_tsvector('keel_search'::regconfig, name), 'A') || "
    "setweight(to_tsvector('keel_search'::regconfig, coalesce(description, '')), 'B')"
)


def generated(vector: str) -> str:
    return f"tsvector GENERATED ALWAYS AS ({vector}) STORED"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # FTS5 stores its own index
    op.execute("DROP INDEX IF EXISTS ix_document_chunks_search")
    op.execute(f"ALTER TABLE document_chunks ADD COLUMN search_vector {generated(CHUNK_VECTOR)}")
    op.execute("CREATE INDEX ix_document_chunks_search ON document_chunks USING gin (search_vector)")
    op.execute("DROP INDEX IF EXISTS ix_products_search")
    op.execute(f"ALTER TABLE products ADD COLUMN search_vector {generated(PRODUCT_VECTOR)}")
    op.execute(
        "CREATE INDEX ix_products_search ON products USING gin (search_vector) WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_products_search")
    op.execute("ALTER TABLE products DROP COLUMN IF EXISTS search_vector")
    op.execute(
        f"CREATE INDEX ix_products_search ON products USING gin (({PRODUCT_VECTOR})) WHERE deleted_at IS NULL"
    )
    op.execute("DROP INDEX IF EXISTS ix_document_chunks_search")
    op.execute("ALTER TABLE document_chunks DROP COLUMN IF EXISTS search_vector")
    op.execute(f"CREATE INDEX ix_document_chunks_search ON document_chunks USING gin (({CHUNK_VECTOR}))")
