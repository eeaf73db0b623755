"""The cloud's state behind the API: its database, its files and the models it serves.

Every :class:`CloudStore` method is one transaction; a request it refuses raises
:class:`Refused` (a status and a one-line reason) and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from noiseveil.app.service import auth
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
from noiseveil.app.service.storage import BlobStore, content_hash, name_problem
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
        return image_row(image)

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
