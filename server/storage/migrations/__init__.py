"""The store's schema migrations (Alembic): ``versions/`` holds one revision per schema
version, ``0001`` being the first released schema. :func:`server.storage.engine.create_schema`
runs them; nothing here is run by the ``alembic`` command line.
"""
