"""Alembic environment: runs on the connection :func:`noiseveil.app.service.database.migrate` passes."""

from alembic import context

from noiseveil.app.service.database import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
