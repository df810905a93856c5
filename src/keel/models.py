"""Every domain's ORM models, imported so ``Base.metadata`` is complete for Alembic."""

from keel.platform.db.base import Base

__all__ = ["Base"]
