"""The cloud's HTTP end of TransNet's training protocol (FastAPI on uvicorn).

    python -m noiseveil.app.protocol_server --classifier cifar10-resnet20 --port 8765

serves ``POST /transnet/loss`` and ``POST /transnet/classify``: each takes one protocol
message (``application/octet-stream``, see :mod:`noiseveil.protocol.messages`) and answers
with one, or with 400 and the reason for a message that is not the protocol's. The server
holds ψ; it receives protected images and labels, and sends losses, gradients with respect to
the protected images and labels: never ψ's weights, and it never sees a plaintext.
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from noiseveil.protocol.cloud import CloudService
from noiseveil.protocol.messages import MAX_BATCH, ClassifyRequest, LossRequest, ProtocolError
from noiseveil.protocol.transport import ROUTES, answer

# The largest message the protocol allows: MAX_BATCH float32 images of 64x64x3, with slack.
MAX_BODY_BYTES = MAX_BATCH * 64 * 64 * 3 * 4 + (1 << 20)


def create_app(cloud: CloudService) -> FastAPI:
    app = FastAPI(
        title="noiseveil TransNet cloud",
        description="The cloud's side of TransNet's two-party training protocol.",
    )

    async def handle(route: str, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return PlainTextResponse(f"message of {len(body)} bytes is over {MAX_BODY_BYTES}", 413)
        try:
            reply = await run_in_threadpool(answer, cloud, route, body)
        except ProtocolError as err:
            return PlainTextResponse(str(err), 400)
        return Response(reply, media_type="application/octet-stream")

    @app.post(ROUTES[LossRequest], summary="L_class and its gradient for protected images and labels")
    async def loss(request: Request) -> Response:
        return await handle(ROUTES[LossRequest], request)

    @app.post(ROUTES[ClassifyRequest], summary="ψ's labels for protected images")
    async def classify(request: Request) -> Response:
        return await handle(ROUTES[ClassifyRequest], request)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from noiseveil.zoo import CLASSIFIERS, load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True, help="the cloud's classifier id (ψ)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    args = parser.parse_args(argv)
    card = CLASSIFIERS[args.classifier]
    from noiseveil.data import load_dataset

    shape = load_dataset(card.dataset).x_test.shape[1:]
    cloud = CloudService(load_classifier(args.classifier), shape, card.config["num_classes"])
    uvicorn.run(create_app(cloud), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
