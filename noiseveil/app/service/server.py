"""The cloud's HTTP API (FastAPI on uvicorn; OpenAPI at ``/docs`` and ``/openapi.json``).

``noiseveil serve`` runs it: see :func:`serve`. The service is four modules beside this one:
:mod:`.settings` (what ``serve`` is told), :mod:`.store` (database, files, models),
:mod:`.schemas` (the API's bodies) and :mod:`.routes` (:func:`create_app`). Routes, with the
permission each needs (:mod:`.auth`)::

    POST   /v1/images             upload   a ciphertext PNG (body: image/png; ?name= its file name,
                                           if the uploader sends it) -> id, label
    GET    /v1/images             read     list: ?label= &model= &since= &until= &newest= &cursor= &limit=
    GET    /v1/images/{id}        read     one row
    GET    /v1/images/{id}/file   read     the PNG, as uploaded
    DELETE /v1/images/{id}        delete   the row and its file
    GET    /v1/labels             read     counts per model and label
    POST   /v1/tokens             manage   a new token (shown once)
    GET    /v1/tokens             manage   tokens, without their secrets
    DELETE /v1/tokens/{id}        manage   revoke
    POST   /v1/protocol/{ψ}/transnet/{loss,classify}
                                  upload   TransNet's training protocol with the classifier ψ
    GET    /v1/health             -        liveness
    GET    /                      -        the operator's gallery page (it asks for a token)

Every refusal is a 4xx with ``{"detail": "one line"}`` and changes nothing.

What the cloud stores per image: the ciphertext PNG as uploaded (by its SHA-256), the model
id and scheme its header names, the label its model gives, the size, the upload time, the
uploading token's id, and the file name only if the uploader sent one (``cloud upload
--send-names``; off by default, since a name can tell what the pixels hide: LFW's are the
people's names). Never a key or a plaintext.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from fastapi import FastAPI

# The entry points the CLI and the tests use, by the names they always had.
from noiseveil.app.service.routes import create_app
from noiseveil.app.service.settings import ServiceSettings
from noiseveil.app.service.store import CloudStore

__all__ = ["CloudStore", "ServiceSettings", "create_app", "serve"]


# How ``serve --workers N`` hands its settings to the worker processes uvicorn starts.
SETTINGS_VARIABLE = "NOISEVEIL_SERVE_SETTINGS"


def serve(settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Migrate, print a first admin token if there is none, and run uvicorn.

    With ``workers`` > 1, uvicorn runs that many processes on one socket, each with its own
    models and batchers (a Python process classifies and answers on one core at a time).
    The start-up work that must happen once (migrations, removing files a crash left without
    their row) happens here, before any worker takes an upload.
    """
    import uvicorn

    torch.set_num_threads(1)  # each process: one core for the model, the other for the requests
    store = CloudStore(settings)
    first = store.ensure_admin()
    print(f"noiseveil cloud: data in {Path(settings.data_dir).resolve()}, database {_shown(settings.url)}")
    print(f"serving models: {', '.join(store.models.served)}")
    if first is not None:
        print(f"first admin token (shown once, keep it): {first}")
    print(f"listening on http://{host}:{port}  (API docs: /docs, gallery: /)", flush=True)
    if workers == 1:
        uvicorn.run(create_app(store), host=host, port=port, log_level="info")
        return
    store.close()  # each worker opens its own
    os.environ[SETTINGS_VARIABLE] = settings.to_json()
    app = f"{__name__}:worker_app"
    uvicorn.run(app, factory=True, workers=workers, host=host, port=port, log_level="info")


def worker_app() -> FastAPI:
    """A worker process's app (``serve --workers N``), from the settings ``serve`` left."""
    torch.set_num_threads(1)
    settings = ServiceSettings.from_json(os.environ[SETTINGS_VARIABLE])
    return create_app(CloudStore(settings, first_start=False))


def _shown(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
