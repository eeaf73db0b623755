"""The Python client of the cloud's API (httpx): what ``noiseveil cloud ...`` runs.

    from noiseveil.app.service.client import CloudClient
    with CloudClient("http://127.0.0.1:8000", token) as cloud:
        row = cloud.upload(Path("cipher/cat/00012.png").read_bytes())
        for row in cloud.images(label=3):
            png = cloud.download(row["id"])

Uploads are retried on connection errors and 5xx answers. A retried upload whose first try
did reach the server is answered 409 "already stored": the client takes that as stored, so a
retry never stores an image twice (the server keys files by content hash).
"""

from __future__ import annotations

import functools
import hashlib
import ssl
import time
from typing import Any

import httpx

from noiseveil.exceptions import NoiseveilError

DIGEST_HEADER = "X-Content-SHA256"  # the body's SHA-256: a change in transit is refused (routes.py)


class CloudError(NoiseveilError):
    """The cloud refused a request or could not be reached (one line, with its reason)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, made once: each new one loads the CA bundle again
    (about 50 ms of CPU here), which many clients, one per upload thread, paid each."""
    return httpx.create_ssl_context()


class CloudClient:
    def __init__(self, url: str, token: str, timeout: float = 60.0, retries: int = 4) -> None:
        if not token:
            raise CloudError("no API token: set NOISEVEIL_TOKEN or pass --token-file FILE")
        self.url, self.retries = url.rstrip("/"), retries
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=_tls_context(),
        )

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, retry: bool = False, **kwargs: Any) -> httpx.Response:
        """One request; with ``retry``, repeated with backoff on connection errors and 5xx."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as err:
                if attempt + 1 == attempts:
                    raise CloudError(f"cloud at {self.url} unreachable: {err}") from None
            else:
                if response.status_code < 500 or attempt + 1 == attempts:
                    return response
            time.sleep(min(0.25 * 2**attempt, 4.0))
        raise AssertionError("unreachable")

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise CloudError(f"cloud refused ({response.status_code}): {detail}", response.status_code)

    def upload(self, data: bytes, name: str | None = None) -> dict[str, Any]:
        """Store one ciphertext PNG, with the file ``name`` to fetch it back under (if given: the
        cloud keeps it); its row (``"duplicate": True`` if it was stored already)."""
        digest = hashlib.sha256(data).hexdigest()
        headers = {"Content-Type": "image/png", DIGEST_HEADER: digest}
        params = {} if name is None else {"name": name}
        response = self._request(
            "POST", "/v1/images", retry=True, content=data, headers=headers, params=params
        )
        if response.status_code == 409:
            return {"sha256": digest, "duplicate": True, "detail": response.json().get("detail")}
        return {**self._check(response).json(), "duplicate": False}

    def images(self, label: int | None = None, model: str | None = None, page: int = 500, **filters: Any):
        """Every stored row matching the filters (``since``/``until`` too), oldest first."""
        params = {k: v for k, v in {"label": label, "model": model, **filters}.items() if v is not None}
        cursor = 0
        while True:
            response = self._request(
                "GET", "/v1/images", retry=True, params={**params, "cursor": cursor, "limit": page}
            )
            body = self._check(response).json()
            yield from body["images"]
            if body["next_cursor"] is None:
                return
            cursor = body["next_cursor"]

    def image(self, image_id: int) -> dict[str, Any]:
        return self._check(self._request("GET", f"/v1/images/{image_id}", retry=True)).json()

    def download(self, image_id: int) -> bytes:
        """The ciphertext PNG, checked against the digest the server stored."""
        response = self._check(self._request("GET", f"/v1/images/{image_id}/file", retry=True))
        if hashlib.sha256(response.content).hexdigest() != response.headers.get(DIGEST_HEADER):
            raise CloudError(f"image {image_id}: download does not match its digest")
        return response.content

    def delete(self, image_id: int) -> None:
        self._check(self._request("DELETE", f"/v1/images/{image_id}"))

    def label_counts(self) -> list[dict[str, Any]]:
        return self._check(self._request("GET", "/v1/labels", retry=True)).json()

    def new_token(self, name: str, role: str) -> dict[str, Any]:
        return self._check(self._request("POST", "/v1/tokens", json={"name": name, "role": role})).json()

    def tokens(self) -> list[dict[str, Any]]:
        return self._check(self._request("GET", "/v1/tokens")).json()

    def revoke(self, token_id: int) -> None:
        self._check(self._request("DELETE", f"/v1/tokens/{token_id}"))
