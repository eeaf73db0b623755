"""The cloud service (issue 15), on real ciphertexts of a shipped model and both databases.

The store runs in-process (FastAPI's test client) for the API's rules, and as a real
``noiseveil serve`` process for the CLI session, a kill mid-upload and its logs. PostgreSQL is
tested when ``NOISEVEIL_TEST_DATABASE_URL`` names a server (``.ci/run`` starts one with
``.ci/postgres``); each test gets a database of its own.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import run_cli
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from noiseveil.app.service.launcher import ServerProcess
from noiseveil.app.service.server import CloudStore, ServiceSettings, create_app
from noiseveil.classifiers.training import predict
from noiseveil.data import (
    PHOTOS,
    fixed_subset,
    load_dataset,
    load_photos,
    read_image,
    same_size_batch,
    to_tensor,
)
from noiseveil.io.png import ciphertext_to_bytes, write_image
from noiseveil.zoo import load_scheme

MODEL = "etc-cifar10-convmixer"  # exact recovery, fast encryption: the service's rules, not a scheme's
POSTGRES = os.environ.get("NOISEVEIL_TEST_DATABASE_URL")


@pytest.fixture(scope="module")
def corpus():
    """12 CIFAR-10 test images, their ciphertexts (the model's public demo key) as uploaded
    bytes, and the label the cloud model gives each ciphertext."""
    data = load_dataset("cifar10")
    plain = data.x_test[fixed_subset(len(data.x_test), 12, seed=5)]
    scheme = load_scheme(MODEL)
    cts = scheme.encrypt(to_tensor(plain), scheme.demo_key())
    labels = predict(scheme.cloud_classifier(), to_tensor(np.stack([c.pixels for c in cts]))).numpy()
    return plain, [ciphertext_to_bytes(c) for c in cts], [int(v) for v in labels], scheme


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield None  # the default: SQLite in the data directory
        return
    if not POSTGRES:
        pytest.skip("no PostgreSQL: set NOISEVEIL_TEST_DATABASE_URL (.ci/postgres starts one)")
    name = f"nv_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def make_store(data_dir: Path, url: str | None, **kwargs) -> CloudStore:
    kwargs.setdefault("max_upload_bytes", 1 << 20)  # the "oversized" upload is over this, not over 64 MiB
    return CloudStore(ServiceSettings(data_dir, database_url=url, models=(MODEL,), **kwargs))


@pytest.fixture
def cloud(tmp_path, database_url):
    """(test client, store, tokens by role) of a fresh cloud."""
    store = make_store(tmp_path / "cloud", database_url)
    tokens = {"admin": store.ensure_admin()}
    for role in ("provider", "user"):
        tokens[role] = store.new_token(role, role).token
    with TestClient(create_app(store)) as client:
        yield client, store, tokens
    store.engine.dispose()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def state(store: CloudStore) -> tuple:
    """Everything an upload could change: the rows and the files."""
    rows = store.list(None, None, None, None, False, 0, 1000).images
    return [r.model_dump() for r in rows], sorted(store.files.digests())


def test_uploads_are_classified_stored_and_served_back(cloud, corpus) -> None:
    client, store, tokens = cloud
    _, bodies, labels, _ = corpus
    for body, label in zip(bodies, labels, strict=True):
        r = client.post("/v1/images", content=body, headers=auth(tokens["provider"]))
        assert r.status_code == 201, r.text
        assert r.json()["label"] == label and r.json()["sha256"] == hashlib.sha256(body).hexdigest()
    reader = auth(tokens["user"])
    for label in set(labels):
        rows = client.get("/v1/images", params={"label": label}, headers=reader).json()["images"]
        assert sorted(r["sha256"] for r in rows) == sorted(
            hashlib.sha256(b).hexdigest() for b, lb in zip(bodies, labels, strict=True) if lb == label
        )
    counts = {c["label"]: c["count"] for c in client.get("/v1/labels", headers=reader).json()}
    assert counts == {lb: labels.count(lb) for lb in set(labels)}
    # pages of 5, oldest and newest first, cover every image once
    for newest in (False, True):
        seen, cursor = [], 0
        while True:
            params = {"limit": 5, "cursor": cursor, "newest": newest}
            page = client.get("/v1/images", params=params, headers=reader).json()
            seen += [r["id"] for r in page["images"]]
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
        assert seen == sorted(seen, reverse=newest) and len(set(seen)) == len(bodies)
    first = client.get("/v1/images", params={"limit": 1}, headers=reader).json()["images"][0]
    got = client.get(f"/v1/images/{first['id']}/file", headers=reader)
    assert got.content == bodies[0] and got.headers["content-type"] == "image/png"
    later = client.get("/v1/images", params={"since": first["uploaded_at"]}, headers=reader).json()
    before = client.get("/v1/images", params={"until": first["uploaded_at"]}, headers=reader).json()
    assert len(later["images"]) == len(bodies) and before["images"] == []
    # the admin deletes: row and file go
    assert client.delete(f"/v1/images/{first['id']}", headers=auth(tokens["admin"])).status_code == 204
    assert client.get(f"/v1/images/{first['id']}", headers=reader).status_code == 404
    assert first["sha256"] not in set(store.files.digests())


ROUTES = [  # (method, path, permission's owner roles)
    ("POST", "/v1/images", {"provider"}),
    ("GET", "/v1/images", {"user", "admin"}),
    ("GET", "/v1/images/1", {"user", "admin"}),
    ("GET", "/v1/images/1/file", {"user", "admin"}),
    ("GET", "/v1/labels", {"user", "admin"}),
    ("DELETE", "/v1/images/1", {"admin"}),
    ("GET", "/v1/tokens", {"admin"}),
    ("POST", "/v1/tokens", {"admin"}),
    ("DELETE", "/v1/tokens/99", {"admin"}),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_role_is_refused_what_it_may_not_do(cloud, corpus) -> None:
    client, store, tokens = cloud
    _, bodies, _, _ = corpus
    assert client.post("/v1/images", content=bodies[0], headers=auth(tokens["provider"])).status_code == 201
    revoked = store.new_token("gone", "admin")
    client.delete(f"/v1/tokens/{revoked.id}", headers=auth(tokens["admin"]))
    for method, path, allowed in ROUTES:
        before = state(store)
        for role in ("provider", "user", "admin"):
            if role in allowed:
                continue
            r = client.request(method, path, headers=auth(tokens[role]), content=bodies[1])
            assert r.status_code == 403 and f"role {role} may not" in r.json()["detail"], (method, path, role)
        for headers in ({}, auth("nv_not-a-token"), auth(revoked.token), {"Authorization": tokens["admin"]}):
            r = client.request(method, path, headers=headers, content=bodies[1])
            assert r.status_code == 401, (method, path, headers)
        assert state(store) == before, (method, path)


def tampered(body: bytes, change) -> bytes:
    """The PNG ``body`` re-saved with its noiseveil text fields passed through ``change``."""
    import io

    with Image.open(io.BytesIO(body)) as im:
        fields, pixels = dict(im.text), np.array(im)
    fields, pixels = change(fields, pixels)
    info = PngImagePlugin.PngInfo()
    for k, v in fields.items():
        info.add_text(k, v)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_bad_requests_get_a_clear_4xx_and_change_nothing(cloud, corpus, tmp_path) -> None:
    client, store, tokens = cloud
    _, bodies, _, _ = corpus
    provider = auth(tokens["provider"])
    assert client.post("/v1/images", content=bodies[0], headers=provider).status_code == 201
    jpeg = tmp_path / "x.jpg"
    Image.new("RGB", (32, 32)).save(jpeg)
    cases = {
        "not a PNG": (b"hello, cloud", 400, "not a readable PNG"),
        "a JPEG": (jpeg.read_bytes(), 400, "ciphertexts are PNG"),
        "truncated": (bodies[1][: len(bodies[1]) // 2], 400, "not a readable PNG"),
        "empty": (b"", 400, "empty upload"),
        "oversized": (bodies[1] + b"\0" * (1 << 20), 413, "over the limit"),
        "a plain image": (_plain_png(tmp_path), 400, "not a noiseveil ciphertext"),
        "replayed": (bodies[0], 409, "already stored as image 1"),
        "a model not served": (
            tampered(bodies[1], lambda f, p: ({**f, "noiseveil:model": "ric-cifar10"}, p)),
            422,
            "not served here",
        ),
        "another scheme's header": (
            tampered(bodies[1], lambda f, p: ({**f, "noiseveil:scheme": "ric"}, p)),
            422,
            "container refused",
        ),
        "no tag": (
            tampered(bodies[1], lambda f, p: ({k: v for k, v in f.items() if k != "noiseveil:tag"}, p)),
            422,
            "no valid authentication tag",
        ),
        "wrong size": (
            tampered(bodies[1], lambda f, p: (f, np.pad(p, ((0, 4), (0, 0), (0, 0))))),
            422,
            "takes 32x32x3",
        ),
    }
    for name, (body, status, reason) in cases.items():
        before = state(store)
        r = client.post("/v1/images", content=body, headers=provider)
        assert r.status_code == status and reason in r.json()["detail"], (name, r.status_code, r.text)
        assert "\n" not in r.json()["detail"]
        assert state(store) == before, name
    # changed in transit: the body does not match the digest its uploader sent
    digest = {"X-Content-SHA256": hashlib.sha256(bodies[2]).hexdigest()}
    r = client.post("/v1/images", content=bodies[2][:-1] + b"\1", headers={**provider, **digest})
    assert r.status_code == 400 and "changed or truncated in transit" in r.json()["detail"]
    assert client.get("/v1/images/999", headers=auth(tokens["user"])).status_code == 404


def _plain_png(tmp_path: Path) -> bytes:
    write_image(tmp_path / "plain.png", np.zeros((32, 32, 3), np.uint8))
    return (tmp_path / "plain.png").read_bytes()


def test_a_changed_pixel_is_stored_but_refused_by_the_key_holder(cloud, corpus) -> None:
    """The cloud has no key: a changed pixel passes its checks; decryption, with the key, refuses it."""
    from noiseveil.io.png import ciphertext_from_bytes
    from noiseveil.schemes.base import SchemeError

    client, _, tokens = cloud
    _, bodies, _, scheme = corpus
    flipped = tampered(bodies[3], lambda f, p: (f, p ^ np.eye(32, dtype=np.uint8)[..., None]))
    r = client.post("/v1/images", content=flipped, headers=auth(tokens["provider"]))
    assert r.status_code == 201
    fetched = client.get(f"/v1/images/{r.json()['id']}/file", headers=auth(tokens["user"])).content
    with pytest.raises(SchemeError, match="authentication failed"):
        scheme.decrypt([ciphertext_from_bytes(fetched)], scheme.demo_key())


def test_a_crash_between_file_and_row_leaves_the_store_consistent(tmp_path, corpus, monkeypatch) -> None:
    """The file is written first: a crash before the row commits leaves an orphan file, which
    the next start removes; no row ever points at a missing file."""
    _, bodies, _, _ = corpus
    store = make_store(tmp_path / "cloud", None)
    provider = store.new_token("p", "provider")
    caller = store.caller(provider.token)
    store.store(bodies[0], caller)

    def crash():
        raise SystemExit("power cut")

    monkeypatch.setattr(store.sessions, "begin", crash)
    with pytest.raises(SystemExit):
        store.store(bodies[1], caller)
    monkeypatch.undo()
    assert hashlib.sha256(bodies[1]).hexdigest() in set(store.files.digests())  # the orphan
    (store.files.root / "ab").mkdir(exist_ok=True)
    (store.files.root / "ab" / ".upload-x.tmp").write_bytes(b"half a file")  # a torn write
    store.engine.dispose()
    again = make_store(tmp_path / "cloud", None)
    assert sorted(again.files.digests()) == [hashlib.sha256(bodies[0]).hexdigest()]
    assert not list(again.files.root.glob("??/.upload-*"))
    assert again.store(bodies[1], caller).id == 2  # and the upload can be made again


class Server(ServerProcess):
    """``noiseveil serve`` of the test model in its own process, its output in a log file."""

    def __init__(self, data_dir: Path, database_url: str | None = None, workers: int = 1) -> None:
        super().__init__(data_dir, database_url, models=(MODEL,), extra_args=["--workers", str(workers)])


def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    """``noiseveil ARGS`` in a fresh process, holding ``token`` the way the README says."""
    return run_cli(list(args), env={"NOISEVEIL_TOKEN": token or ""}, timeout=300)


def test_the_readme_session_and_nothing_secret_reaches_the_server(tmp_path, corpus) -> None:
    """serve, make tokens, upload a folder (encrypting locally), list by label, fetch and
    decrypt; then no token, key or plaintext byte is in the server's log, database or files."""
    plain, _, _, _ = corpus
    server = Server(tmp_path / "cloud")
    try:
        admin = server.admin_token
        url = ["--url", server.base]
        provider = cli("cloud", "token", "new", "--role", "provider", "--name", "lab", *url, token=admin)
        user = cli("cloud", "token", "new", "--role", "user", "--name", "doctor", *url, token=admin)
        provider, user = provider.stdout.strip(), user.stdout.strip()
        for i, image in enumerate(plain):
            write_image(tmp_path / "photos" / f"{i:02d}.png", image)
        key = tmp_path / "etc.key"
        assert cli("keygen", str(key), "--model", MODEL, "--demo").returncode == 0
        up = cli(
            "cloud", "upload", str(tmp_path / "photos"), "-m", MODEL, "-k", str(key), *url, token=provider
        )
        assert up.returncode == 0 and f"upload: {len(plain)} of {len(plain)} files done" in up.stderr, (
            up.stderr
        )
        again = cli(
            "cloud", "upload", str(tmp_path / "photos"), "-m", MODEL, "-k", str(key), *url, token=provider
        )
        assert (
            again.returncode == 0
            and f"{len(plain)} of the uploaded files were stored already" in again.stderr
        )
        counts = cli("cloud", "list", "--counts", *url, token=user)
        assert sum(int(line.split("\t")[3]) for line in counts.stdout.splitlines()) == len(plain)
        label = counts.stdout.splitlines()[0].split("\t")[1]
        listed = cli("cloud", "list", "--label", label, *url, token=user).stdout.splitlines()
        fetched = cli(
            "cloud",
            "fetch",
            "--label",
            label,
            "-o",
            str(tmp_path / "back"),
            "--decrypt",
            "-k",
            str(key),
            *url,
            token=user,
        )
        assert fetched.returncode == 0, fetched.stderr
        recovered = {read_image(p).tobytes() for p in (tmp_path / "back").glob("*.png")}
        assert len(recovered) == len(listed) and recovered <= {p.tobytes() for p in plain}  # bit for bit
        other = tmp_path / "other.key"
        assert cli("keygen", str(other), "--model", MODEL).returncode == 0
        wrong = cli(
            "cloud",
            "fetch",
            "--label",
            label,
            "-o",
            str(tmp_path / "wrong"),
            "--decrypt",
            "-k",
            str(other),
            *url,
            token=user,
        )
        assert (
            wrong.returncode == 1
            and wrong.stderr.count("FAILED") == len(listed)
            and "Traceback" not in wrong.stderr
        )
        assert not list((tmp_path / "wrong").glob("*.png")) if (tmp_path / "wrong").exists() else True
        denied = cli("cloud", "upload", str(tmp_path / "photos-ciphertexts"), *url, token=user)
        assert denied.returncode == 1 and "role user may not upload" in denied.stderr
    finally:
        server.stop()
    secrets = [admin, provider, user, key.read_bytes().hex(), other.read_bytes().hex()]
    # `serve` prints the first admin token once, on purpose: its operator's only way to get it
    log = [line for line in server.log.read_text().splitlines() if not line.startswith("first admin token")]
    assert any("POST /v1/images" in line for line in log)  # the access log is there, and was read
    stored = [
        "\n".join(log).encode(),
        *(p.read_bytes() for p in (tmp_path / "cloud").rglob("*") if p.is_file()),
    ]
    for blob in stored:
        for secret in secrets:
            assert secret.encode() not in blob
        assert key.read_bytes() not in blob and other.read_bytes() not in blob
        assert not any(image.tobytes() in blob for image in plain)


def test_a_new_token_sent_to_a_file_is_said_to_be_there(tmp_path) -> None:
    """`cloud token new ... > provider.token`: stderr said "shown once, keep it:" with nothing
    after the colon (the token went to the file); it now says where the token went (issue 27)."""
    server = Server(tmp_path / "cloud")
    try:
        argv = ["cloud", "token", "new", "--role", "provider", "--name", "lab", "--url", server.base]
        made = cli(*argv, token=server.admin_token)
    finally:
        server.stop()
    assert made.returncode == 0, made.stderr
    (line,) = made.stderr.strip().splitlines()
    assert not line.endswith(":"), line
    assert line.startswith("token 2 (provider, lab) written to standard output; shown once"), line
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and len(token) > 20 and token not in made.stderr


def test_a_file_name_is_kept_only_when_sent_and_only_inside_its_folder(cloud, corpus) -> None:
    """Issue 27: `cloud fetch` named files by server id. An uploader may send the file's name
    (``?name=``); the cloud keeps it, the first upload's for the same bytes; a name that could
    leave the folder it is fetched into (or hide in it) is refused and changes nothing."""
    client, store, tokens = cloud
    _, bodies, _, _ = corpus
    provider = auth(tokens["provider"])
    named = client.post("/v1/images", content=bodies[0], headers=provider, params={"name": "cat/0001.png"})
    unnamed = client.post("/v1/images", content=bodies[1], headers=provider)
    assert named.json()["file_name"] == "cat/0001.png" and unnamed.json()["file_name"] is None
    again = client.post("/v1/images", content=bodies[0], headers=provider, params={"name": "other.png"})
    assert again.status_code == 409
    row = client.get(f"/v1/images/{named.json()['id']}", headers=auth(tokens["user"])).json()
    assert row["file_name"] == "cat/0001.png"
    before = state(store)
    bad = ["../up.png", "/etc/x.png", "a/../../b.png", "a/./b.png", "a//b.png", ".hid.png", "d/.h/x.png"]
    bad += ["a\\b.png", "new\nline.png", "notes.txt", "x" * 1100 + ".png"]
    for name in bad:
        r = client.post("/v1/images", content=bodies[2], headers=provider, params={"name": name})
        assert r.status_code == 422 and "file name" in r.json()["detail"], (name, r.text)
    assert state(store) == before


def test_fetch_writes_only_names_inside_its_folder(tmp_path) -> None:
    """The fetching side checks a stored name too (its files are at stake): a name that would
    leave -o is a FAILED line and nothing is written outside; a missing name is ID.png."""
    from noiseveil.app.cloud_commands import _download

    class Cloud:
        def download(self, image_id: int) -> bytes:
            return b"png bytes of %d" % image_id

    rows = [
        {"id": 1, "file_name": "../escaped.png"},
        {"id": 2, "file_name": None},
        {"id": 3, "file_name": "cat/a.png"},
        {"id": 4, "file_name": "cat/a.png"},  # the same name uploaded twice: the later keeps its id
    ]
    out = tmp_path / "out"
    report = _download(Cloud(), rows, out, quiet=True)
    assert not (tmp_path / "escaped.png").exists()
    assert [reason for _, reason in report.failures] == [
        "image 1: stored name '../escaped.png' not used: a file name is a relative path inside its folder "
        "(no '..', no leading '/', no hidden part)"
    ]
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}
    assert files == {
        "2.png": b"png bytes of 2",
        "cat/a.png": b"png bytes of 3",
        "cat/a-4.png": b"png bytes of 4",
    }
    again = _download(Cloud(), rows[1:2], out, quiet=True)  # never overwritten
    assert again.done == 0 and again.failures[0][1].endswith("2.png: exists; refusing to overwrite")


def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_rows(tmp_path) -> None:
    """0002 adds the nullable file_name column: a database made by 0001 keeps its rows (name None)."""
    from alembic import command
    from alembic.config import Config

    from noiseveil.app.service.database import MIGRATIONS, make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        token = (
            "INSERT INTO tokens (id, name, role, token_hash, created_at) VALUES (1, 'a', 'admin', 'h', '')"
        )
        connection.execute(text(token))
        image = "INSERT INTO images (sha256, model_id, scheme, label, size_bytes, uploaded_at, uploaded_by)"
        connection.execute(text(f"{image} VALUES ('{'0' * 64}', 'm', 'etc', 3, 10, '2026-01-01', 1)"))
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT label, file_name FROM images")).all()
    assert [tuple(r) for r in rows] == [(3, None)]
    engine.dispose()


def test_fetch_keeps_the_names_the_uploader_sent(tmp_path, corpus) -> None:
    """`cloud upload --send-names`, then `cloud fetch` (and `--decrypt`) writes each file under
    the name it was uploaded with; without --send-names the cloud learns none and fetch
    writes ID.png; a second fetch overwrites nothing (issue 27)."""
    plain, bodies, _, scheme = corpus
    (tmp_path / "cipher" / "cat").mkdir(parents=True)
    (tmp_path / "cipher" / "cat" / "a.png").write_bytes(bodies[0])
    (tmp_path / "cipher" / "b.png").write_bytes(bodies[1])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "c.png").write_bytes(bodies[2])
    key = tmp_path / "demo.key"
    scheme.demo_key().save(key)
    server = Server(tmp_path / "cloud")
    try:
        url = ["--url", server.base]
        provider, user = server.new_token("provider", "lab"), server.new_token("user", "doctor")
        sent = cli("cloud", "upload", str(tmp_path / "cipher"), "--send-names", *url, token=provider)
        assert sent.returncode == 0, sent.stderr
        assert cli("cloud", "upload", str(tmp_path / "other"), *url, token=provider).returncode == 0
        listed = cli("cloud", "list", *url, token=user).stdout.splitlines()
        assert [line.split("\t")[-1] for line in listed] == ["b.png", "cat/a.png", "-"]
        unnamed_id = listed[2].split("\t")[0]
        fetched = cli("cloud", "fetch", "-o", str(tmp_path / "back"), *url, token=user)
        assert fetched.returncode == 0, fetched.stderr
        back = {
            p.relative_to(tmp_path / "back").as_posix(): p.read_bytes()
            for p in (tmp_path / "back").rglob("*.png")
        }
        assert back == {"cat/a.png": bodies[0], "b.png": bodies[1], f"{unnamed_id}.png": bodies[2]}
        again = cli("cloud", "fetch", "-o", str(tmp_path / "back"), *url, token=user)
        assert again.returncode == 1 and again.stderr.count("exists; refusing to overwrite") == 3
        decrypted = cli(
            "cloud", "fetch", "--decrypt", "-k", str(key), "-o", str(tmp_path / "rec"), *url, token=user
        )
        assert decrypted.returncode == 0, decrypted.stderr
        assert np.array_equal(read_image(tmp_path / "rec" / "cat" / "a.png"), plain[0])
        assert np.array_equal(read_image(tmp_path / "rec" / "b.png"), plain[1])
    finally:
        server.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_killing_the_server_mid_upload_loses_nothing_acknowledged(
    tmp_path, database_url, corpus, workers
) -> None:
    """Uploads from 4 threads; the server (all its worker processes) is killed (SIGKILL)
    mid-run and restarted; every acknowledged image is there with its bytes, and the rerun
    stores each image exactly once. Uploads share forward passes and commits (batching.py), so
    a kill lands among groups of uploads in flight."""
    from noiseveil.app.service.client import CloudClient, CloudError

    _, _, _, scheme = corpus
    data = load_dataset("cifar10")
    images = data.x_test[fixed_subset(len(data.x_test), 160, seed=11)]
    bodies = [ciphertext_to_bytes(c) for c in scheme.encrypt(to_tensor(images), scheme.demo_key())]
    server = Server(tmp_path / "cloud", database_url, workers)
    admin = server.admin_token
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()

    def upload(part: list[bytes]) -> None:
        with CloudClient(server.base, provider, retries=0) as c:
            for body in part:
                try:
                    row = c.upload(body)
                except CloudError:
                    return  # the server is gone
                with lock:
                    acknowledged[row["sha256"]] = row["id"]

    try:
        with CloudClient(server.base, admin) as c:
            provider = c.new_token("load", "provider")["token"]
        threads = [threading.Thread(target=upload, args=(bodies[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        while len(acknowledged) < 40:
            time.sleep(0.01)
        server.kill()
        for t in threads:
            t.join()
        assert len(acknowledged) < len(bodies)
        server.start()
        with CloudClient(server.base, admin) as c:
            stored = {r["sha256"]: r for r in c.images()}
            for digest, image_id in acknowledged.items():
                assert stored[digest]["id"] == image_id
                assert hashlib.sha256(c.download(image_id)).hexdigest() == digest
        with CloudClient(server.base, provider) as c:  # the provider's rerun
            results = [c.upload(b) for b in bodies]
        assert sum(not r["duplicate"] for r in results) == len(bodies) - len(stored)
        with CloudClient(server.base, admin) as c:
            final = list(c.images())
        assert sorted(r["sha256"] for r in final) == sorted(hashlib.sha256(b).hexdigest() for b in bodies)
    finally:
        server.stop()


def test_the_api_is_documented() -> None:
    from noiseveil.app.service import server

    store = type("NoStore", (), {"models": type("M", (), {"served": ()})()})()
    spec = TestClient(server.create_app(store)).get("/openapi.json").json()
    assert {"/v1/images", "/v1/images/{image_id}/file", "/v1/labels", "/v1/tokens"} <= set(spec["paths"])
    assert all(op.get("summary") for path in spec["paths"].values() for op in path.values())


def test_the_api_docs_load_nothing_from_another_host() -> None:
    """/docs and /redoc name only this server's own assets, and it serves them (issue 27: Swagger
    UI came from a CDN, so the page was blank offline; "nothing is downloaded at run time")."""
    import re

    from noiseveil.app.service import server

    store = type("NoStore", (), {"models": type("M", (), {"served": ()})()})()
    client = TestClient(server.create_app(store))
    for page, script in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = client.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert any(u.endswith(script) for u in urls), urls  # the check sees the page's assets
        assert [u for u in urls if "//" in u] == [], page  # no http://, https:// or //host
        assert "cdn" not in html.text.lower() and "googleapis" not in html.text
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert '"validatorUrl": null' in client.get("/docs").text  # Swagger UI's online validator: off
    assert "/v1/images" in client.get("/openapi.json").json()["paths"]


def test_the_cloud_serves_transnets_protocol_to_providers(tmp_path) -> None:
    """TransNet's cloud side through the service: a provider trains h_θ over HTTP with its token
    (the classifier stays in the server), a user may not, an unknown ψ is 404, garbage is 400."""
    import dataclasses

    from noiseveil.protocol import LossRequest
    from noiseveil.schemes.base import TrainingPlan
    from noiseveil.schemes.transnet import TransNetScheme

    psi = "cifar10-resnet"
    server = ServerProcess(tmp_path / "cloud", models=(MODEL,), extra_args=["--protocol-classifiers", psi])
    try:
        admin = server.admin_token
        with httpx.Client(base_url=server.base) as http:
            tokens = {
                role: http.post("/v1/tokens", json={"name": role, "role": role}, headers=auth(admin)).json()[
                    "token"
                ]
                for role in ("provider", "user")
            }
            x = np.zeros((2, 3, 32, 32), np.float32)
            message = LossRequest(protected=x, labels=np.array([1, 2])).to_bytes()
            route = f"/v1/protocol/{psi}/transnet/loss"
            assert http.post(route, content=message, headers=auth(tokens["provider"])).status_code == 200
            refused = http.post(route, content=message, headers=auth(tokens["user"]))
            assert refused.status_code == 403
            unknown = http.post(
                "/v1/protocol/cifar10-vgg/transnet/loss", content=message, headers=auth(tokens["provider"])
            )
            assert unknown.status_code == 404 and "offered: cifar10-resnet" in unknown.json()["detail"]
            garbage = http.post(route, content=b"not a message", headers=auth(tokens["provider"]))
            assert garbage.status_code == 400
        data = load_dataset("cifar10")
        small = dataclasses.replace(
            data,
            x_train=data.x_train[:16],
            y_train=data.y_train[:16],
            x_test=data.x_test[:8],
            y_test=data.y_test[:8],
        )
        plan = TrainingPlan(
            model_id="transnet-through-the-service",
            image_shape=(32, 32, 3),
            classifier_id=psi,
            config={"transform": {"widths": (4, 8)}},
            train={"alpha": 0.01, "steps": 2, "batch_size": 8},
            cloud_url=f"{server.base}/v1/protocol/{psi}",
            cloud_token=tokens["provider"],
        )

        def no_psi():
            raise AssertionError("the user's side loaded the cloud's classifier")

        trained = TransNetScheme.train(plan, small, no_psi, tmp_path / "h.ckpt")
        assert trained.report["steps"] == 2 and 0 <= trained.manifest["test_accuracy"] <= 1
    finally:
        server.stop()


def test_every_shipped_scheme_is_stored_and_labelled_through_its_capabilities(tmp_path) -> None:
    """One ciphertext of each shipped scheme model (its demo key, or none if keyless) uploaded to
    a cloud serving them all: each is accepted and labelled by the cloud model its scheme's
    capabilities name (RIC, AVP: the plaintext classifier; EtC: the model for its key; TransNet: ψ)."""
    from noiseveil.zoo import read_manifest, shipped_schemes

    models = tuple(shipped_schemes())
    store = CloudStore(ServiceSettings(tmp_path / "cloud", models=models))
    caller = store.caller(store.new_token("p", "provider").token)
    for model_id in models:
        scheme = load_scheme(model_id)
        dataset = read_manifest()[model_id]["dataset"]
        plain = same_size_batch([img for _, img in load_photos()], 1) if dataset == PHOTOS else None
        plain = plain if plain is not None else load_dataset(dataset).x_test[:1]
        (ct,) = scheme.encrypt(to_tensor(plain), scheme.demo_key())
        row = store.store(ciphertext_to_bytes(ct), caller)
        expected = int(predict(scheme.cloud_classifier(), to_tensor(ct.pixels[None]))[0])
        assert (row.model_id, row.scheme, row.label) == (model_id, scheme.name, expected)
    assert len(store.list(None, None, None, None, False, 0, 100).images) == len(models)


def test_concurrent_uploads_share_forward_passes_and_commits(tmp_path, database_url, corpus) -> None:
    """12 distinct uploads and 4 copies of one more, all at once from 16 threads: the distinct
    ones are stored once each with the label each gets alone, in fewer forward passes and
    fewer commits than uploads; of the copies exactly one is stored, the others refused."""
    from noiseveil.app.service.store import Refused

    _, bodies, labels, scheme = corpus
    store = make_store(tmp_path / "cloud", database_url, batch_wait=0.2)  # wide: all arrive in time
    caller = store.caller(store.new_token("p", "provider").token)
    flipped = np.ascontiguousarray(corpus[0][:1, :, ::-1])  # an image not among the 12
    extra = ciphertext_to_bytes(scheme.encrypt(to_tensor(flipped), scheme.demo_key())[0])
    uploads = bodies + [extra] * 4
    outcomes: list = [None] * len(uploads)
    start = threading.Barrier(len(uploads))

    def upload(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = store.store(uploads[i], caller)
        except Refused as err:
            outcomes[i] = err

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.label for o in outcomes[:12]] == labels
    copies = outcomes[12:]
    assert sum(not isinstance(o, Refused) for o in copies) == 1
    assert all(o.status == 409 for o in copies if isinstance(o, Refused))
    rows = store.list(None, None, None, None, False, 0, 100).images
    assert sorted(r.sha256 for r in rows) == sorted({hashlib.sha256(b).hexdigest() for b in uploads})
    served = store.models.get(MODEL)
    assert served.batcher.items == len(uploads) and served.batcher.batches < len(uploads)
    assert store.commits.items == len(uploads) and store.commits.batches < len(uploads)
    store.engine.dispose()


@pytest.mark.parametrize("on_conflict", [True, False], ids=["ON CONFLICT", "looked up first"])
def test_a_commit_group_stores_new_bytes_once_and_refuses_the_rest(
    tmp_path, database_url, on_conflict
) -> None:
    """One group of rows as concurrent uploads hand it to the commit: bytes stored before, and
    the second of the same bytes in the group, are refused with the stored image's id; each
    new row gets its own id, in order. Both ways of inserting (one statement that skips
    conflicts, PostgreSQL's and SQLite's; a lookup first, any other database's) agree."""
    from noiseveil.app.service.database import utcnow
    from noiseveil.app.service.store import Refused

    store = make_store(tmp_path / "cloud", database_url)
    if not on_conflict:
        store._insert_new = None  # as on a database without INSERT ... ON CONFLICT
    caller = store.caller(store.new_token("p", "provider").token)

    def row(digest: str) -> dict:
        return dict(
            sha256=digest * 64, model_id=MODEL, scheme="etc", label=1, class_name=None, size_bytes=1,
            uploaded_at=utcnow(), uploaded_by=caller.token_id, file_name=None,
        )  # fmt: skip

    (before,) = store._insert([row("c")])
    outcomes = store._insert([row("a"), row("c"), row("b"), row("a")])
    assert [o.sha256[0] for o in outcomes if not isinstance(o, Refused)] == ["a", "b"]
    assert outcomes[0].id < outcomes[2].id and before.id not in (outcomes[0].id, outcomes[2].id)
    assert [o.detail for o in outcomes if isinstance(o, Refused)] == [
        f"already stored as image {before.id} (same bytes: a replay or a retry)",
        f"already stored as image {outcomes[0].id} (same bytes: a replay or a retry)",
    ]
    assert sorted(r.sha256[0] for r in store.list(None, None, None, None, False, 0, 10).images) == [
        "a",
        "b",
        "c",
    ]
    store.close()
