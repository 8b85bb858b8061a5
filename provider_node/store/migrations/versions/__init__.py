"""Alembic revisions, applied in order by ``provider_node.store.engine.migrate``."""
