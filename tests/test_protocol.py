"""TransNet's two-party protocol: what crosses the boundary, and proof that nothing else does.

The user trains h_θ holding plaintexts; the cloud holds ψ. Tested here: the messages refuse
anything but their own arrays; the gradient the user assembles from the cloud's reply is the
gradient of L_class through ψ; over HTTP the user's process never loads ψ's weights, the
cloud's process never receives a plaintext, and both transports carry the same bytes.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from torch.nn import functional as F

import noiseveil.zoo
from noiseveil.classifiers.training import predict
from noiseveil.data import load_dataset, to_tensor
from noiseveil.protocol import (
    ClassifyRequest,
    CloudService,
    HttpTransport,
    InProcessTransport,
    LossReply,
    LossRequest,
    ProtocolError,
)
from noiseveil.protocol.messages import FORMAT
from noiseveil.protocol.user import TransformTraining, train_transform
from noiseveil.schemes.transnet import TransformConfig, build_transform
from noiseveil.unet import UNet
from noiseveil.zoo import load_classifier

PSI = "cifar10-resnet"  # the shipped CIFAR-10 classifier stands in for the cloud's ψ
SHAPE = (32, 32, 3)
TINY = TransformConfig(widths=(4, 8))


def cifar(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("cifar10")
    return data.x_train[:n], data.y_train[:n]


def cloud() -> CloudService:
    return CloudService(load_classifier(PSI), SHAPE, 10)


def test_messages_round_trip_and_refuse_anything_else() -> None:
    request = LossRequest(protected=np.random.rand(2, 3, 32, 32).astype(np.float32), labels=np.array([1, 2]))
    back = LossRequest.from_bytes(request.to_bytes())
    assert np.array_equal(back.protected, request.protected) and back.labels.tolist() == [1, 2]
    with pytest.raises(ProtocolError, match="expected a classify-request message, got loss-request"):
        ClassifyRequest.from_bytes(request.to_bytes())
    with pytest.raises(ProtocolError, match="not a protocol message"):
        LossRequest.from_bytes(b"plain bytes")

    def archive(**arrays) -> bytes:
        blob = io.BytesIO()
        np.savez(blob, format=np.array(FORMAT), kind=np.array("loss-request"), **arrays)
        return blob.getvalue()

    images, labels = request.protected, request.labels
    with pytest.raises(ProtocolError, match="fields"):  # an extra array (say, the plaintexts)
        LossRequest.from_bytes(archive(protected=images, labels=labels, plain=images))
    with pytest.raises(ProtocolError, match="dtype float64"):
        LossRequest.from_bytes(archive(protected=images.astype(np.float64), labels=labels))
    with pytest.raises(ProtocolError, match="not a protocol message"):  # a pickled object
        LossRequest.from_bytes(archive(protected=np.array([object()], dtype=object), labels=labels))
    with pytest.raises(ProtocolError, match=r"finite and in \[0, 1\]"):
        LossRequest.from_bytes(archive(protected=images * 300, labels=labels))
    with pytest.raises(ProtocolError, match="one non-negative label per image"):
        LossRequest.from_bytes(archive(protected=images, labels=np.array([1])))
    with pytest.raises(ProtocolError, match="labels must be below 10"):
        cloud().class_loss(replace(request, labels=np.array([1, 10])))
    with pytest.raises(ProtocolError, match="this model takes"):
        cloud().classify(ClassifyRequest(protected=np.zeros((1, 3, 28, 28), np.float32)))


def test_the_assembled_gradient_is_the_gradient_of_l_class_through_psi() -> None:
    """What the user back-propagates, (x̂·g).sum() with the cloud's g = ∂L_class/∂x̂, gives
    h_θ the same gradient as L_class(ψ(h_θ(x)), y) computed with ψ in hand."""
    x_np, y_np = cifar(8)
    x, y = to_tensor(x_np), torch.from_numpy(y_np)
    torch.manual_seed(0)
    net = build_transform(TINY, 3)
    x_hat = net(x)
    reply = InProcessTransport(cloud()).class_loss(LossRequest(x_hat.detach().numpy(), y_np))
    via_protocol = torch.autograd.grad((x_hat * torch.from_numpy(reply.grad)).sum(), list(net.parameters()))
    psi = load_classifier(PSI)
    direct_loss = F.cross_entropy(psi(net(x)), y)
    direct = torch.autograd.grad(direct_loss, list(net.parameters()))
    assert float(reply.loss) == pytest.approx(direct_loss.item(), rel=1e-5)
    for a, b in zip(via_protocol, direct, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)


def train_a_few_steps(transport, steps: int = 3) -> tuple[UNet, dict]:
    from noiseveil.perceptual import ImageNetFeatureMap

    x, y = cifar()
    torch.manual_seed(0)
    net = build_transform(TINY, 3)
    cfg = TransformTraining(alpha=0.01, steps=steps, batch_size=8, seed=0)
    phi = ImageNetFeatureMap(0, TransformConfig().feature_scale)
    return net, train_transform(net, x, y, transport, phi, cfg, progress=False)


def test_in_process_only_protected_images_labels_losses_and_gradients_cross() -> None:
    crossed: list[tuple[str, bytes]] = []
    net, _ = train_a_few_steps(InProcessTransport(cloud(), recorder=lambda d, b: crossed.append((d, b))))
    plain, _ = cifar()
    assert [d for d, _ in crossed] == ["to cloud", "to user"] * 3
    for direction, data in crossed:
        if direction == "to cloud":
            message = LossRequest.from_bytes(data)  # refuses anything that is not exactly this
            sent = message.protected
            # never a plaintext: no sent image equals (or is within 8-bit rounding of) any input
            distance = np.abs(sent[:, None] - to_tensor(plain).numpy()[None]).reshape(
                len(sent), len(plain), -1
            )
            assert distance.max(axis=2).min() > 1 / 255
        else:
            reply = LossReply.from_bytes(data)
            assert reply.grad.shape == (8, 3, 32, 32)


@pytest.fixture(scope="module")
def cloud_server():
    """ψ in its own process, behind HTTP on loopback; it logs the digest of each image it gets."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "noiseveil.app.protocol_server", "--classifier", PSI, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url + "/openapi.json", timeout=1.0)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"protocol server did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_over_http_the_user_never_loads_psi_and_both_transports_send_the_same(
    cloud_server, monkeypatch
) -> None:
    def no_psi(*args, **kwargs):
        raise AssertionError("the user's process loaded a classifier")

    crossed: list[tuple[str, bytes]] = []
    with monkeypatch.context() as m:  # the user's side: no classifier may be loaded here
        m.setattr(noiseveil.zoo, "load_classifier", no_psi)
        transport = HttpTransport(cloud_server, recorder=lambda d, b: crossed.append((d, b)))
        net_http, report_http = train_a_few_steps(transport)
        labels = transport.classify(
            ClassifyRequest(protected=np.random.rand(4, 3, 32, 32).astype(np.float32))
        )
        transport.close()
    assert labels.labels.shape == (4,)
    local: list[tuple[str, bytes]] = []
    net_local, report_local = train_a_few_steps(
        InProcessTransport(cloud(), recorder=lambda d, b: local.append((d, b)))
    )
    sent_http = [LossRequest.from_bytes(b) for d, b in crossed[:6] if d == "to cloud"]  # then the classify
    sent_local = [LossRequest.from_bytes(b) for d, b in local if d == "to cloud"]
    for a, b in zip(sent_http, sent_local, strict=True):  # same user, same messages, either transport
        assert np.array_equal(a.protected, b.protected) and np.array_equal(a.labels, b.labels)
    l_http = [h["l_class"] for h in report_http["history"]]
    l_local = [h["l_class"] for h in report_local["history"]]
    assert np.allclose(l_http, l_local, rtol=1e-4)


def test_the_http_cloud_refuses_what_is_not_the_protocol(cloud_server) -> None:
    with httpx.Client(base_url=cloud_server) as client:
        bad = client.post("/transnet/loss", content=b"not a message")
        assert bad.status_code == 400 and "not a protocol message" in bad.text
        wrong_kind = ClassifyRequest(protected=np.zeros((1, 3, 32, 32), np.float32)).to_bytes()
        refused = client.post("/transnet/loss", content=wrong_kind)
        assert refused.status_code == 400 and "expected a loss-request" in refused.text
        assert client.post("/transnet/weights", content=b"").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "noiseveil TransNet cloud"
    with pytest.raises(ProtocolError, match="cloud refused the message \\(400\\)"):
        HttpTransport(cloud_server).class_loss(
            LossRequest(protected=np.zeros((1, 3, 28, 28), np.float32), labels=np.array([0]))
        )


def test_an_unreachable_cloud_is_one_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProtocolError, match="cloud unreachable"):
        HttpTransport(f"http://127.0.0.1:{port}", timeout=2).classify(
            ClassifyRequest(protected=np.zeros((1, 3, 32, 32), np.float32))
        )


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from noiseveil.perceptual import ImageNetFeatureMap

    x, y = cifar()
    cfg = TransformTraining(alpha=0.01, steps=4, batch_size=8, seed=0)
    phi = ImageNetFeatureMap(0, TransformConfig().feature_scale)

    def run(checkpoint: Path | None, stop_after: int | None = None) -> UNet:
        torch.manual_seed(0)
        net = build_transform(TINY, 3)
        train_transform(net, x, y, InProcessTransport(cloud()), phi, cfg, checkpoint, False, stop_after)
        return net

    whole = run(None)
    run(tmp_path / "h.ckpt", stop_after=2)  # a session ends after two steps ...
    resumed = run(tmp_path / "h.ckpt")  # ... and the next one finishes the run
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_scheme_trains_through_the_cloud_server(cloud_server, tmp_path: Path) -> None:
    """`noiseveil train transnet-... --cloud URL`: the scheme's own training over HTTP, with a
    classifier loader that fails if the user's side ever calls it."""
    import dataclasses

    from noiseveil.schemes.base import TrainingPlan
    from noiseveil.schemes.transnet import TransNetScheme

    def no_psi():
        raise AssertionError("the user's side loaded the cloud's classifier")

    data = load_dataset("cifar10")
    small = dataclasses.replace(
        data,
        x_train=data.x_train[:32],
        y_train=data.y_train[:32],
        x_test=data.x_test[:1100],
        y_test=data.y_test[:1100],
    )
    plan = TrainingPlan(
        model_id="transnet-http",
        image_shape=SHAPE,
        classifier_id=PSI,
        config={"transform": {"widths": (4, 8)}},
        train={"alpha": 0.01, "steps": 2, "batch_size": 8},
        cloud_url=cloud_server,
    )
    trained = TransNetScheme.train(plan, small, no_psi, tmp_path / "h.ckpt")
    assert trained.report["steps"] == 2 and trained.manifest["alpha"] == 0.01
    assert trained.scheme.keygen().key_id == "" and trained.scheme.network() is not None
    # the shipped accuracy is ψ's, as the cloud answered ClassifyRequests (two: 1,100 > MAX_BATCH)
    protected = to_tensor(trained.scheme.protect(to_tensor(small.x_test)))
    here = (predict(load_classifier(PSI), protected).numpy() == small.y_test).mean()
    assert trained.manifest["test_accuracy"] == pytest.approx(here)
