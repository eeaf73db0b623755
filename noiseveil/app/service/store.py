"""The cloud's state behind the API: its database, its files and the models it serves.

Every :class:`CloudStore` method is one transaction; a request it refuses raises
:class:`Refused` (a status and a one-line reason) and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from noiseveil.app.service import auth
from noiseveil.app.service.batching import RequestBatcher
from noiseveil.app.service.database import (
    ApiToken,
    StoredImage,
    make_engine,
    migrate,
    session_factory,
    utcnow,
)
from noiseveil.app.service.schemas import ImageList, ImageRow, LabelCount, NewToken, TokenRow, image_row
from noiseveil.app.service.settings import ServiceSettings
from noiseveil.app.service.storage import BlobStore, name_problem
from noiseveil.exceptions import NoiseveilError
from noiseveil.protocol import CloudService

log = logging.getLogger("noiseveil.service")


class Refused(Exception):
    """A request refused with ``status`` and a one-line reason; nothing was changed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class ServedModel:
    scheme: Any  # noiseveil.schemes.base.Scheme
    classifier: torch.nn.Module
    classes: list[str] | None
    batching: tuple[int, float]  # (max_batch, max_wait in s) of its batcher: the settings'

    def __post_init__(self) -> None:
        self._traced: dict[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] = {}
        max_batch, max_wait = self.batching
        self.batcher = RequestBatcher(self.labels, "classify", max_batch, max_wait)

    def label(self, pixels: np.ndarray) -> int:
        """The label of one image, classified in one forward pass with the images that other
        requests are having classified at the same time (a batch of one when alone)."""
        return self.batcher.submit(pixels)

    def labels(self, images: list[np.ndarray]) -> list[int]:
        """One forward pass per shape among ``images``. The module is frozen in eval mode, so an
        image's label does not depend on its batch (up to floating-point near-ties)."""
        from noiseveil.data import to_tensor

        out: list[int] = [0] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, pixels in enumerate(images):
            by_shape.setdefault(pixels.shape, []).append(i)
        with torch.no_grad():
            for indices in by_shape.values():
                batch = to_tensor(np.stack([images[i] for i in indices]))
                logits = self._forward(tuple(batch.shape[1:]))(batch)
                for i, label in zip(indices, logits.argmax(1).tolist(), strict=True):
                    out[i] = label
        return out

    def _forward(self, shape: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The classifier for images of ``shape``: traced once (:func:`traced_if_identical`)."""
        if shape not in self._traced:
            self._traced[shape] = traced_if_identical(self.classifier, shape)
        return self._traced[shape]


def traced_if_identical(
    module: torch.nn.Module, shape: tuple[int, ...]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` traced by TorchScript for inputs of ``shape`` (any batch size), if the trace
    gives bit-identical logits to the module on a batch of another size; else the module.

    Why: eager PyTorch takes the GIL back after every operation, and with many request threads
    busy in Python each of those hand-overs waits its turn; a traced graph runs all its
    operations in C++. The check keeps what a trace can get wrong (a shape or a branch baked
    in) from changing a label: a model that traces differently is served as it is.
    """
    import warnings

    generator = torch.Generator().manual_seed(0)
    example, check = (torch.rand((n, *shape), generator=generator) for n in (2, 3))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings: the check below decides
            traced = torch.jit.trace(module, example, check_trace=False)
            if torch.equal(traced(check), module(check)):
                return traced
    except Exception as err:  # noqa: BLE001 - any model that cannot be traced is served eagerly
        log.info("serving %s eagerly: it does not trace (%s)", type(module).__name__, err)
        return module
    log.info("serving %s eagerly: its trace differs from it", type(module).__name__)
    return module


def _insert_skipping_stored(dialect: str) -> Any:
    """INSERT of image rows that skips a row whose bytes are stored (or repeated in the same
    statement) and returns (sha256, id) of those it inserted; None for a database without
    ON CONFLICT DO NOTHING."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return None
    statement = dialect_insert(StoredImage).on_conflict_do_nothing(index_elements=[StoredImage.sha256])
    return statement.returning(StoredImage.sha256, StoredImage.id)


def _already_stored(image_id: int | None) -> Refused:
    if image_id is None:  # stored by a concurrent upload (not yet visible, or deleted again)
        return Refused(409, "already stored (same bytes, uploaded concurrently)")
    return Refused(409, f"already stored as image {image_id} (same bytes: a replay or a retry)")


class ModelRegistry:
    """The models the cloud serves, each loaded on first use."""

    def __init__(self, served: tuple[str, ...] | None, batching: tuple[int, float]) -> None:
        from noiseveil.zoo import scheme_models

        self.served = tuple(served) if served is not None else tuple(scheme_models())
        self.batching = batching
        self._loaded: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for served in self._loaded.values():
                served.batcher.close()
            self._loaded.clear()

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
                self._loaded[model_id] = ServedModel(scheme, classifier, cloud.classes, self.batching)
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


class CloudStore:
    """The cloud's state: database, files and models; every method is one transaction."""

    def __init__(self, settings: ServiceSettings, first_start: bool = True) -> None:
        """``first_start``: this is the only process opening the store now, so files that a
        crash left without their row can be removed (a worker of ``serve --workers`` is not:
        another worker's upload may be between its file and its row)."""
        self.settings = settings
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.url)
        migrate(self.engine)
        self.sessions: sessionmaker = session_factory(self.engine)
        # A single read needs no transaction: without one, a lookup is its one statement, not
        # BEGIN, the statement and ROLLBACK (three round trips to PostgreSQL; every request
        # looks its token up).
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.reads: sessionmaker = session_factory(autocommit)
        self._insert_new = _insert_skipping_stored(self.engine.dialect.name)
        self.files = BlobStore(Path(settings.data_dir) / "files")
        self.models = ModelRegistry(settings.models, (settings.classify_batch, settings.batch_wait))
        # concurrent uploads' rows in one transaction: one fsync of the database's log for all
        self.commits = RequestBatcher(self._insert, "commit", settings.commit_batch, settings.batch_wait)
        self.protocol = ProtocolClouds(settings.protocol_classifiers, self.models)
        if first_start:
            self._collect_orphans()

    def _collect_orphans(self) -> None:
        with self.sessions() as s:  # files a crash left without their row
            referenced = set(s.scalars(select(StoredImage.sha256)))
        removed = self.files.collect_orphans(referenced)
        if removed:
            log.warning("removed %d file(s) left unreferenced by an interrupted upload", removed)

    def close(self) -> None:
        """Finish the uploads in flight, stop the batchers and close the database's connections."""
        self.commits.close()
        self.models.close()
        self.engine.dispose()

    def ensure_admin(self) -> str | None:
        """A first admin token when the database has none (returned once, to print); else None."""
        with self.sessions.begin() as s:
            if s.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.role == "admin")):
                return None
            return auth.issue_token(s, "first admin", "admin")[1]

    def caller(self, token: str) -> auth.Caller | None:
        with self.reads() as s:
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
        label = served.label(ct.pixels)
        digest = self.files.put(body)  # durable before the row that points at it
        row = {
            "sha256": digest,
            "model_id": ct.model_id,
            "scheme": ct.scheme,
            "label": label,
            "class_name": served.classes[label] if served.classes else None,
            "size_bytes": len(body),
            "uploaded_at": utcnow(),
            "uploaded_by": caller.token_id,
            "file_name": file_name,
        }
        stored = self.commits.submit(row)  # returns once the row is committed
        log.info("stored image %d: model %s, label %d", stored.id, stored.model_id, stored.label)
        return stored

    def _insert(self, rows: list[dict[str, Any]]) -> list[ImageRow | Refused]:
        """The rows of concurrent uploads in one transaction (one fsync of the database's log).

        A row whose bytes are stored already is refused (a replay or a retry: its file, named
        by the same hash, is the stored one), and so is the second of the same bytes in one
        group. Where the database skips conflicting rows itself (PostgreSQL, SQLite: INSERT ...
        ON CONFLICT DO NOTHING), the group is one statement and the stored rows are looked up
        only for the refused; elsewhere they are looked up first, and if a row still breaks the
        unique constraint (another server process stored it meanwhile) each row is inserted in
        its own transaction, so that only the later one is refused.
        """
        if self._insert_new is None:
            return self._insert_checked(rows)
        with self.sessions.begin() as s:
            ids = {digest: image_id for digest, image_id in s.execute(self._insert_new, rows)}
        outcomes: list[ImageRow | None] = []
        for row in rows:  # pop: of the same bytes twice in the group, only the first is new
            image_id = ids.pop(row["sha256"], None)
            outcomes.append(None if image_id is None else ImageRow(id=image_id, **row))
        return self._refused_as_stored(rows, outcomes)

    def _refused_as_stored(
        self, rows: list[dict[str, Any]], outcomes: list[ImageRow | None]
    ) -> list[ImageRow | Refused]:
        """Each row not inserted (None) refused with the id its bytes are stored under."""
        refused = [row["sha256"] for row, made in zip(rows, outcomes, strict=True) if made is None]
        if not refused:
            return outcomes  # type: ignore[return-value]  # every row was inserted
        stored = self._stored_ids(refused)
        return [
            made or _already_stored(stored.get(row["sha256"]))
            for row, made in zip(rows, outcomes, strict=True)
        ]

    def _insert_checked(self, rows: list[dict[str, Any]]) -> list[ImageRow | Refused]:
        """:meth:`_insert` for a database without ON CONFLICT: look up, then insert the rest."""
        stored = self._stored_ids([row["sha256"] for row in rows])
        fresh = [row for row in rows if row["sha256"] not in stored]
        try:
            ids = self._insert_together(fresh)
        except IntegrityError:
            if len(rows) == 1:
                return [_already_stored(None)]
            return [self._insert_checked([row])[0] for row in rows]
        made = {row["sha256"]: ImageRow(id=i, **row) for row, i in zip(fresh, ids, strict=True)}
        return [made.get(row["sha256"]) or _already_stored(stored[row["sha256"]]) for row in rows]

    def _stored_ids(self, digests: list[str]) -> dict[str, int]:
        """The ids of the stored rows among ``digests``, by digest."""
        query = select(StoredImage.sha256, StoredImage.id).where(StoredImage.sha256.in_(digests))
        with self.reads() as s:
            return {digest: image_id for digest, image_id in s.execute(query)}

    def _insert_together(self, rows: list[dict[str, Any]]) -> list[int]:
        """The new rows' ids; one statement (and one commit) for all."""
        if not rows:
            return []
        statement = insert(StoredImage).returning(StoredImage.id, sort_by_parameter_order=True)
        with self.sessions.begin() as s:
            return list(s.execute(statement, rows).scalars())

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
        return ImageList(images=[image_row(r) for r in rows], next_cursor=rows[-1].id if more else None)

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
