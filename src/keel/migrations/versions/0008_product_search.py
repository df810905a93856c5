"""products: full-text index over name and description

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same expression the search query uses (keel.search.service.PRODUCT_VECTOR), so the
# planner can use the index: the name weighs more than the description. Partial, like the
# other product indexes: soft-deleted products are never searched.
POSTGRES_SEARCH = (
    "CREATE INDEX ix_products_search ON products USING gin (("
    "setweight(to_tsvector('keel_search'::regconfig, name), 'A') || "
    "setweight(to_tsvector('keel_search'::regconfig, coalesce(description, '')), 'B')"
    ")) WHERE deleted_at IS NULL",
)

# FTS5 needs a stable integer rowid, and products have a UUID key: their implicit rowid
# may be renumbered by VACUUM. product_search_keys gives each product a permanent
# integer (an INTEGER PRIMARY KEY is never renumbered), and the index keeps its own copy
# of name and description under that integer. Triggers keep both in step; soft-deleted
# products stay indexed (a restore needs nothing) and the query leaves them out.
SQLITE_SEARCH = (
    "CREATE TABLE product_search_keys (id INTEGER PRIMARY KEY, product_id CHAR(32) NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE products_fts USING fts5("
    "name, description, tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN "
    "INSERT INTO product_search_keys(product_id) VALUES (new.id); "
    "INSERT INTO products_fts(rowid, name, description) VALUES ("
    "(SELECT id FROM product_search_keys WHERE product_id = new.id), new.name, coalesce(new.description, '')"
    "); END",
    "CREATE TRIGGER products_search_au AFTER UPDATE OF name, description ON products "
    "WHEN old.name IS NOT new.name OR old.description IS NOT new.description BEGIN "
    "UPDATE products_fts SET name = new.name, description = coalesce(new.description, '') "
    "WHERE rowid = (SELECT id FROM product_search_keys WHERE product_id = new.id); END",
    "CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN "
    "DELETE FROM products_fts WHERE rowid = (SELECT id FROM product_search_keys WHERE product_id = old.id); "
    "DELETE FROM product_search_keys WHERE product_id = old.id; END",
    # Products that exist already.
    "INSERT INTO product_search_keys(product_id) SELECT id FROM products",
    "INSERT INTO products_fts(rowid, name, description) SELECT k.id, p.name, coalesce(p.description, '') "
    "FROM product_search_keys AS k JOIN products AS p ON p.id = k.product_id",
)


def upgrade() -> None:
    statements = POSTGRES_SEARCH if op.get_bind().dialect.name == "postgresql" else SQLITE_SEARCH
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_products_search")
        return
    for name in ("products_search_ai", "products_search_au", "products_search_ad"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS products_fts")
    op.execute("DROP TABLE IF EXISTS product_search_keys")
