"""The bodies the cloud's HTTP API answers with and accepts (its OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from noiseveil.app.service.database import StoredImage


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


def image_row(image: StoredImage) -> ImageRow:
    return ImageRow.model_validate(image, from_attributes=True)
