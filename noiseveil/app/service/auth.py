"""Roles and API tokens.

Every route but the health check and the page's HTML needs ``Authorization: Bearer TOKEN``.
A token is 32 random bytes (URL-safe text) shown once, when made; the database keeps only its
SHA-256, which is enough for a secret of that entropy (nothing to brute-force) and lets a
lookup find it. What each role may do:

=========  ======================================================
provider   upload ciphertexts
user       list, count and download ciphertexts
admin      list, count, download, delete; make and revoke tokens
=========  ======================================================
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from noiseveil.app.service.database import ApiToken, utcnow

UPLOAD, READ, DELETE, MANAGE_TOKENS = "upload", "read", "delete", "manage tokens"
PERMISSIONS = {
    "provider": frozenset({UPLOAD}),
    "user": frozenset({READ}),
    "admin": frozenset({READ, DELETE, MANAGE_TOKENS}),
}
ROLES = tuple(PERMISSIONS)
TOKEN_PREFIX = "nv_"


@dataclass(frozen=True)
class Caller:
    token_id: int
    name: str
    role: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, name: str, role: str) -> tuple[ApiToken, str]:
    """A new token of ``role``: the row (hash only) and the token itself, to show once."""
    if role not in PERMISSIONS:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=token_hash(token), created_at=utcnow())
    session.add(row)
    session.flush()
    return row, token


def caller_for(session: Session, token: str) -> Caller | None:
    """The caller a live token stands for, or None (columns, not an ORM object: every request
    asks this)."""
    query = select(ApiToken.id, ApiToken.name, ApiToken.role).where(
        ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)
    )
    row = session.execute(query).first()
    return None if row is None else Caller(*row)


def may(caller: Caller, permission: str) -> bool:
    return permission in PERMISSIONS[caller.role]
