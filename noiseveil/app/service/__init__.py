"""The three-party system as a service: the cloud's server, its storage and its clients.

::

    data provider                       cloud (this server)
    plaintext ──encrypt (key)──▶ PNG ──POST /v1/images──▶ check the container (no key),
                                        (provider token)   classify it (the model it names),
                                                           store the file by content hash,
                                                           a row (id, model, label, date)
    authorised user                                              │
    plaintext ◀──decrypt (key)── PNG ◀──GET /v1/images?label=…───┘
                                        (user token)

The cloud never holds a key or a plaintext: it receives ciphertext PNGs, checks what can be
checked without a key (:meth:`~noiseveil.schemes.base.Scheme.check_container`), labels them with
the model each names and serves them back by label, date and id. Only the key holder can tell a
changed pixel (the tag); the cloud refuses what is malformed, unknown, oversized or already
stored. Roles (provider, user, admin) are API tokens, stored hashed.

- :mod:`.storage`: files by content hash, written atomically (temporary file, fsync, rename);
- :mod:`.database`: SQLAlchemy tables, Alembic migrations, SQLite or PostgreSQL;
- :mod:`.auth`: roles and tokens;
- :mod:`.server`: ``noiseveil serve`` (and the table of routes), from :mod:`.settings` (what it
  is told), :mod:`.store` (database, files and models behind the API), :mod:`.schemas` (the
  API's bodies) and :mod:`.routes` (the FastAPI application);
- :mod:`.web`: the operator's gallery page;
- :mod:`.client`: the Python client (httpx) behind ``noiseveil cloud ...``.
"""
