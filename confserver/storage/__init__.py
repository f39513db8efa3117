"""Persistent state: SQLAlchemy models, Alembic migrations and repositories."""
