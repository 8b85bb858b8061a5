"""Alembic revisions, applied in order by ``provider_node.store.migrate``."""
