"""How the user's messages reach the cloud: one narrow interface, two transports.

:class:`InProcessTransport` hands the cloud the message *bytes* (the same wire format as HTTP,
so nothing else can slip across even in one process); :class:`HttpTransport` posts them to a
cloud server (``noiseveil.app.protocol_server``) with httpx. Both can record every message
that crosses, which is how the tests prove the boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from noiseveil.protocol.cloud import CloudService
from noiseveil.protocol.messages import (
    ClassifyReply,
    ClassifyRequest,
    LossReply,
    LossRequest,
    Message,
    ProtocolError,
)

Recorder = Callable[[str, bytes], None]  # (direction "to cloud" / "to user", message bytes)

ROUTES = {LossRequest: "/transnet/loss", ClassifyRequest: "/transnet/classify"}


class Transport(ABC):
    """The user's only handle on the cloud."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder

    @abstractmethod
    def _exchange(self, route: str, request: bytes) -> bytes:
        """Send request bytes on ``route``; the reply bytes."""

    def _call(self, request: Message, reply_type: type[Message]) -> Message:
        data = request.to_bytes()
        if self.recorder:
            self.recorder("to cloud", data)
        answer = self._exchange(ROUTES[type(request)], data)
        if self.recorder:
            self.recorder("to user", answer)
        return reply_type.from_bytes(answer)

    def class_loss(self, request: LossRequest) -> LossReply:
        return self._call(request, LossReply)  # type: ignore[return-value]

    def classify(self, request: ClassifyRequest) -> ClassifyReply:
        return self._call(request, ClassifyReply)  # type: ignore[return-value]


def answer(cloud: CloudService, route: str, request: bytes) -> bytes:
    """The cloud's handling of one message: parse (refusing anything else), compute, reply."""
    if route == ROUTES[LossRequest]:
        return cloud.class_loss(LossRequest.from_bytes(request)).to_bytes()
    if route == ROUTES[ClassifyRequest]:
        return cloud.classify(ClassifyRequest.from_bytes(request)).to_bytes()
    raise ProtocolError(f"no protocol route {route}")


class InProcessTransport(Transport):
    """The cloud in this process, reached through the wire format all the same."""

    def __init__(self, cloud: CloudService, recorder: Recorder | None = None) -> None:
        super().__init__(recorder)
        self._cloud = cloud

    def _exchange(self, route: str, request: bytes) -> bytes:
        return answer(self._cloud, route, request)


class HttpTransport(Transport):
    """A cloud over HTTP: ``noiseveil.app.protocol_server`` at its root, or the cloud service
    (``noiseveil serve``) at ``/v1/protocol/<ψ>`` with a provider's API ``token``."""

    def __init__(
        self,
        base_url: str,
        recorder: Recorder | None = None,
        timeout: float = 120.0,
        token: str | None = None,
    ) -> None:
        import httpx

        super().__init__(recorder)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def _exchange(self, route: str, request: bytes) -> bytes:
        import httpx

        try:
            response = self._client.post(
                route, content=request, headers={"content-type": "application/octet-stream"}
            )
        except httpx.HTTPError as exc:
            raise ProtocolError(f"cloud unreachable at {self._client.base_url}: {exc}") from None
        if response.status_code != 200:
            raise ProtocolError(
                f"cloud refused the message ({response.status_code}): {response.text.strip()}"
            )
        return response.content

    def close(self) -> None:
        self._client.close()
