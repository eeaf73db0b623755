"""The cloud's HTTP API (FastAPI on uvicorn; OpenAPI at ``/docs`` and ``/openapi.json``).

``noiseveil serve`` runs it: see :func:`serve`. Routes, with the permission each needs
(:mod:`.auth`)::

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

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from noiseveil.app.protocol_server import MAX_BODY_BYTES
from noiseveil.app.service import auth
from noiseveil.app.service.database import (
    ApiToken,
    StoredImage,
    make_engine,
    migrate,
    session_factory,
    utcnow,
)
from noiseveil.app.service.storage import BlobStore, content_hash, name_problem
from noiseveil.exceptions import NoiseveilError
from noiseveil.protocol import CloudService, ProtocolError
from noiseveil.protocol.transport import answer

log = logging.getLogger("noiseveil.service")

DIGEST_HEADER = "X-Content-SHA256"  # the uploader's digest of the body: a change in transit is refused


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path
    database_url: str | None = None  # default: SQLite in data_dir
    models: tuple[str, ...] | None = None  # the scheme models served; default: every shipped one
    # classifiers offered for TransNet's training protocol; default: those of the served
    # protocol-trained models (their ψ)
    protocol_classifiers: tuple[str, ...] | None = None
    max_upload_bytes: int = 64 << 20  # a 12-megapixel RGB ciphertext is 36 MB

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(Path(self.data_dir) / 'noiseveil.db').resolve()}"


@dataclass
class ServedModel:
    scheme: Any  # noiseveil.schemes.base.Scheme
    classifier: torch.nn.Module
    classes: list[str] | None

    def label(self, pixels: np.ndarray) -> int:
        """One forward pass. Requests classify concurrently: a frozen module in eval mode under
        no_grad changes no state, so the two cores each run one."""
        from noiseveil.data import to_tensor

        with torch.no_grad():
            return int(self.classifier(to_tensor(pixels[None])).argmax(1).item())


class ModelRegistry:
    """The models the cloud serves, each loaded on first use."""

    def __init__(self, served: tuple[str, ...] | None) -> None:
        from noiseveil.zoo import scheme_models

        self.served = tuple(served) if served is not None else tuple(scheme_models())
        self._loaded: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> ServedModel:
        if model_id not in self.served:
            raise Refused(422, f"model {model_id!r} is not served here; served: {', '.join(self.served)}")
        with self._lock:
            if model_id not in self._loaded:
                from noiseveil.app.services import cloud_model
                from noiseveil.classifiers.architectures import freeze
                from noiseveil.zoo import load_scheme

                scheme = load_scheme(model_id)
                cloud = cloud_model(model_id, scheme)
                classifier = freeze(cloud.classifier)  # eval mode: label() relies on it
                self._loaded[model_id] = ServedModel(scheme, classifier, cloud.classes)
            return self._loaded[model_id]


class ProtocolClouds:
    """The cloud's side of TransNet's training protocol, one per offered classifier ψ."""

    def __init__(self, offered: tuple[str, ...] | None, models: ModelRegistry) -> None:
        if offered is None:  # from the manifest: no model is loaded to find out
            from noiseveil.zoo import SCHEMES, read_manifest

            entries = [read_manifest()[m] for m in models.served]
            protocol = [e for e in entries if SCHEMES[e["scheme"]].capabilities.cloud_model == "protocol"]
            offered = tuple(sorted({e["classifier_id"] for e in protocol}))
        self.offered = offered
        self._clouds: dict[str, CloudService] = {}
        self._lock = threading.Lock()

    def get(self, classifier_id: str) -> CloudService:
        if classifier_id not in self.offered:
            offered = ", ".join(self.offered) or "none"
            raise Refused(404, f"no protocol with classifier {classifier_id!r} here; offered: {offered}")
        with self._lock:
            if classifier_id not in self._clouds:
                from noiseveil.app.services import cloud_model

                psi = cloud_model(classifier_id)
                self._clouds[classifier_id] = CloudService(psi.classifier, psi.image_shape, len(psi.classes))
            return self._clouds[classifier_id]


class Refused(Exception):
    """A request refused with ``status`` and a one-line reason; nothing was changed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class ImageRow(BaseModel):
    id: int
    sha256: str
    model_id: str
    scheme: str
    label: int
    class_name: str | None
    size_bytes: int
    uploaded_at: datetime
    file_name: str | None = None  # as its uploader named it, if it sent the name (--send-names)


class ImageList(BaseModel):
    images: list[ImageRow]
    next_cursor: int | None  # pass as ?cursor= for the next page; None: this was the last


class LabelCount(BaseModel):
    model_id: str
    label: int
    class_name: str | None
    count: int


class TokenRequest(BaseModel):
    name: str
    role: str


class TokenRow(BaseModel):
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


class NewToken(TokenRow):
    token: str  # shown once


def _row(image: StoredImage) -> ImageRow:
    return ImageRow.model_validate(image, from_attributes=True)


class CloudStore:
    """The cloud's state: database, files and models; every method is one transaction."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.url)
        migrate(self.engine)
        self.sessions: sessionmaker = session_factory(self.engine)
        self.files = BlobStore(Path(settings.data_dir) / "files")
        self.models = ModelRegistry(settings.models)
        self.protocol = ProtocolClouds(settings.protocol_classifiers, self.models)
        with self.sessions() as s:  # files a crash left without their row
            referenced = set(s.scalars(select(StoredImage.sha256)))
        removed = self.files.collect_orphans(referenced)
        if removed:
            log.warning("removed %d file(s) left unreferenced by an interrupted upload", removed)

    def ensure_admin(self) -> str | None:
        """A first admin token when the database has none (returned once, to print); else None."""
        with self.sessions.begin() as s:
            if s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.role == "admin")):
                return None
            return auth.issue_token(s, "first admin", "admin")[1]

    def caller(self, token: str) -> auth.Caller | None:
        with self.sessions() as s:
            return auth.caller_for(s, token)

    def store(self, body: bytes, caller: auth.Caller, file_name: str | None = None) -> ImageRow:
        from noiseveil.io.png import ciphertext_from_bytes

        problem = None if file_name is None else name_problem(file_name)
        if problem is not None:
            raise Refused(422, f"file name {file_name!r} refused: {problem}")
        try:
            ct = ciphertext_from_bytes(body, "upload")
        except NoiseveilError as err:
            raise Refused(400, str(err)) from None
        served = self.models.get(ct.model_id)
        try:
            served.scheme.check_container(ct)
        except NoiseveilError as err:
            raise Refused(422, f"container refused: {err}") from None
        digest = content_hash(body)
        with self.sessions() as s:
            existing = s.scalar(select(StoredImage.id).where(StoredImage.sha256 == digest))
        if existing is not None:
            raise Refused(409, f"already stored as image {existing} (same bytes: a replay or a retry)")
        label = served.label(ct.pixels)
        self.files.put(body)  # durable before the row that points at it
        image = StoredImage(
            sha256=digest,
            model_id=ct.model_id,
            scheme=ct.scheme,
            label=label,
            class_name=served.classes[label] if served.classes else None,
            size_bytes=len(body),
            uploaded_at=utcnow(),
            uploaded_by=caller.token_id,
            file_name=file_name,
        )
        try:
            with self.sessions.begin() as s:
                s.add(image)
        except IntegrityError:  # the same bytes, uploaded concurrently, won the race
            raise Refused(409, "already stored (same bytes, uploaded concurrently)") from None
        log.info("stored image %d: model %s, label %d", image.id, image.model_id, image.label)
        return _row(image)

    def list(
        self,
        label: int | None,
        model: str | None,
        since: datetime | None,
        until: datetime | None,
        newest: bool,
        cursor: int,
        limit: int,
    ) -> ImageList:
        """A page of rows in id order (upload order), oldest or ``newest`` first, after ``cursor``
        (the previous page's ``next_cursor``; 0: from the start)."""
        if newest:
            query = select(StoredImage).order_by(StoredImage.id.desc())
            query = query.where(StoredImage.id < cursor) if cursor else query
        else:
            query = select(StoredImage).where(StoredImage.id > cursor).order_by(StoredImage.id)
        query = query.limit(limit + 1)
        if label is not None:
            query = query.where(StoredImage.label == label)
        if model is not None:
            query = query.where(StoredImage.model_id == model)
        if since is not None:
            query = query.where(StoredImage.uploaded_at >= since)
        if until is not None:
            query = query.where(StoredImage.uploaded_at < until)
        with self.sessions() as s:
            rows = list(s.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return ImageList(images=[_row(r) for r in rows], next_cursor=rows[-1].id if more else None)

    def image(self, image_id: int) -> StoredImage:
        with self.sessions() as s:
            image = s.get(StoredImage, image_id)
        if image is None:
            raise Refused(404, f"no image {image_id}")
        return image

    def delete(self, image_id: int) -> None:
        with self.sessions.begin() as s:
            image = s.get(StoredImage, image_id)
            if image is None:
                raise Refused(404, f"no image {image_id}")
            digest = image.sha256
            s.delete(image)
        self.files.delete(digest)  # after the commit: a crash here leaves an orphan, not a dangling row

    def label_counts(self) -> list[LabelCount]:
        query = (
            select(StoredImage.model_id, StoredImage.label, StoredImage.class_name, func.count())
            .group_by(StoredImage.model_id, StoredImage.label, StoredImage.class_name)
            .order_by(StoredImage.model_id, StoredImage.label)
        )
        with self.sessions() as s:
            return [
                LabelCount(model_id=m, label=lb, class_name=c, count=n) for m, lb, c, n in s.execute(query)
            ]

    def new_token(self, name: str, role: str) -> NewToken:
        if role not in auth.PERMISSIONS:
            raise Refused(422, f"unknown role {role!r}; roles: {', '.join(auth.ROLES)}")
        with self.sessions.begin() as s:
            row, token = auth.issue_token(s, name, role)
            return NewToken(**TokenRow.model_validate(row, from_attributes=True).model_dump(), token=token)

    def tokens(self) -> list[TokenRow]:
        with self.sessions() as s:
            return [TokenRow.model_validate(r, from_attributes=True) for r in s.scalars(select(ApiToken))]

    def revoke(self, token_id: int) -> None:
        with self.sessions.begin() as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise Refused(404, f"no token {token_id}")
            live_admins = s.scalar(
                select(func.count())
                .select_from(ApiToken)
                .where(ApiToken.role == "admin", ApiToken.revoked_at.is_(None))
            )
            if row.role == "admin" and row.revoked_at is None and live_admins == 1:
                raise Refused(409, "refusing to revoke the last admin token")
            row.revoked_at = row.revoked_at or utcnow()


def permitted(permission: str):
    """A dependency: the caller of a live bearer token whose role has ``permission``."""

    async def check(request: Request) -> auth.Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing token: send Authorization: Bearer TOKEN")
        caller = await run_in_threadpool(request.app.state.store.caller, token.strip())
        if caller is None:
            raise HTTPException(401, "unknown or revoked token")
        if not auth.may(caller, permission):
            raise HTTPException(403, f"role {caller.role} may not {permission}")
        return caller

    return Depends(check)


Uploader = Annotated[auth.Caller, permitted(auth.UPLOAD)]
Reader = Annotated[auth.Caller, permitted(auth.READ)]
Deleter = Annotated[auth.Caller, permitted(auth.DELETE)]
Manager = Annotated[auth.Caller, permitted(auth.MANAGE_TOKENS)]


def create_app(store: CloudStore) -> FastAPI:
    from noiseveil.app.service.web import gallery_page

    app = FastAPI(
        title="noiseveil cloud",
        description="Stores and classifies ciphertext images; never holds a key or a plaintext.",
        version="1",
        docs_url=None,  # FastAPI's own pages load their scripts from a CDN: served below, locally
        redoc_url=None,
    )
    app.state.store = store
    _add_offline_docs(app)

    @app.exception_handler(Refused)
    async def refused(_request: Request, err: Refused) -> Response:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": err.detail}, status_code=err.status)

    @app.get("/v1/health", summary="Liveness")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(store.models.served)}

    @app.post("/v1/images", status_code=201, response_model=ImageRow, summary="Upload a ciphertext PNG")
    async def upload(
        request: Request,
        caller: Uploader,
        name: Annotated[
            str | None,
            Query(description="the file's path as its uploader names it (relative, .png); default: none"),
        ] = None,
    ) -> ImageRow:
        body = await _read_limited(request, store.settings.max_upload_bytes)
        claimed = request.headers.get(DIGEST_HEADER)
        if claimed is not None and claimed.lower() != content_hash(body):
            raise Refused(400, f"body does not match its {DIGEST_HEADER}: changed or truncated in transit")
        return await run_in_threadpool(store.store, body, caller, name)

    @app.get("/v1/images", response_model=ImageList, summary="List stored ciphertexts, a page at a time")
    async def list_images(
        _caller: Reader,
        label: int | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        newest: Annotated[bool, Query(description="newest first (default: oldest first)")] = False,
        cursor: Annotated[int, Query(ge=0, description="the previous page's next_cursor")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> ImageList:
        return await run_in_threadpool(store.list, label, model, since, until, newest, cursor, limit)

    @app.get("/v1/images/{image_id}", response_model=ImageRow, summary="One stored ciphertext's row")
    async def image(image_id: int, _caller: Reader) -> ImageRow:
        return _row(await run_in_threadpool(store.image, image_id))

    @app.get("/v1/images/{image_id}/file", summary="The ciphertext PNG as uploaded")
    async def image_file(image_id: int, _caller: Reader) -> Response:
        row = await run_in_threadpool(store.image, image_id)
        data = await run_in_threadpool(store.files.get, row.sha256)
        return Response(data, media_type="image/png", headers={DIGEST_HEADER: row.sha256})

    @app.delete("/v1/images/{image_id}", status_code=204, summary="Delete a ciphertext and its file")
    async def delete_image(image_id: int, _caller: Deleter) -> Response:
        await run_in_threadpool(store.delete, image_id)
        return Response(status_code=204)

    @app.get("/v1/labels", response_model=list[LabelCount], summary="Counts per model and label")
    async def labels(_caller: Reader) -> list[LabelCount]:
        return await run_in_threadpool(store.label_counts)

    @app.post("/v1/tokens", status_code=201, response_model=NewToken, summary="Make a token (shown once)")
    async def new_token(request: TokenRequest, _caller: Manager) -> NewToken:
        return await run_in_threadpool(store.new_token, request.name, request.role)

    @app.get("/v1/tokens", response_model=list[TokenRow], summary="Tokens, without their secrets")
    async def tokens(_caller: Manager) -> list[TokenRow]:
        return await run_in_threadpool(store.tokens)

    @app.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a token")
    async def revoke(token_id: int, _caller: Manager) -> Response:
        await run_in_threadpool(store.revoke, token_id)
        return Response(status_code=204)

    @app.post(
        "/v1/protocol/{classifier_id}/transnet/{step}",
        summary="TransNet's training protocol: a LossRequest or ClassifyRequest for the classifier ψ",
    )
    async def protocol(classifier_id: str, step: str, request: Request, _caller: Uploader) -> Response:
        body = await _read_limited(request, MAX_BODY_BYTES)
        cloud = await run_in_threadpool(store.protocol.get, classifier_id)
        try:
            reply = await run_in_threadpool(answer, cloud, f"/transnet/{step}", body)
        except ProtocolError as err:
            raise Refused(400, str(err)) from None
        return Response(reply, media_type="application/octet-stream")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(gallery_page())

    return app


DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's scripts, from the fastapi-offline package


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with every asset served from this server: the
    cloud may have no internet, and nothing is downloaded at run time. The assets are those the
    fastapi-offline package ships (Swagger UI 5, ReDoc 2); the online validator is off."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    def page(request: Request) -> tuple[dict[str, str], str]:
        """What both pages share (the spec, the title, the favicon), and where the assets are."""
        root = request.scope.get("root_path", "")
        here = f"{root}{DOCS_ASSETS}"
        return {"openapi_url": f"{root}{app.openapi_url}", "title": f"{app.title} - API"}, here

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        common, here = page(request)
        return get_swagger_ui_html(
            **common,
            swagger_js_url=f"{here}/swagger-ui-bundle.js",
            swagger_css_url=f"{here}/swagger-ui.css",
            swagger_favicon_url=f"{here}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # else it asks validator.swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        common, here = page(request)
        js, icon = f"{here}/redoc.standalone.js", f"{here}/favicon.png"
        return get_redoc_html(**common, redoc_js_url=js, redoc_favicon_url=icon, with_google_fonts=False)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` bytes, before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"upload of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    if not size:
        raise Refused(400, "empty upload: send the ciphertext PNG as the request body")
    return b"".join(chunks)


def serve(settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Migrate, print a first admin token if there is none, and run uvicorn."""
    import uvicorn

    torch.set_num_threads(1)  # many requests at once: one core each, not both for one
    store = CloudStore(settings)
    first = store.ensure_admin()
    print(f"noiseveil cloud: data in {Path(settings.data_dir).resolve()}, database {_shown(settings.url)}")
    print(f"serving models: {', '.join(store.models.served)}")
    if first is not None:
        print(f"first admin token (shown once, keep it): {first}")
    print(f"listening on http://{host}:{port}  (API docs: /docs, gallery: /)", flush=True)
    uvicorn.run(create_app(store), host=host, port=port, log_level="info")


def _shown(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
