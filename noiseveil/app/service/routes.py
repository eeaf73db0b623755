"""The cloud's HTTP routes (FastAPI), each with the permission it needs (:mod:`.auth`); the
table of routes is in :mod:`noiseveil.app.service.server`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from noiseveil.app.protocol_server import MAX_BODY_BYTES
from noiseveil.app.service import auth
from noiseveil.app.service.client import DIGEST_HEADER  # the wire's one name for the body's digest
from noiseveil.app.service.schemas import (
    ImageList,
    ImageRow,
    LabelCount,
    NewToken,
    TokenRequest,
    TokenRow,
    image_row,
)
from noiseveil.app.service.storage import content_hash
from noiseveil.app.service.store import CloudStore, Refused
from noiseveil.protocol import ProtocolError
from noiseveil.protocol.transport import answer


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
        return image_row(await run_in_threadpool(store.image, image_id))

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
