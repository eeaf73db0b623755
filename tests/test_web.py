"""The cloud's gallery page (``GET /``) in a real browser, on a real ``noiseveil serve``.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them),
driven by selenium, against EtC ciphertexts of CIFAR-10 test images uploaded through the API.
The browser's and the cloud's setup are shared with ``scripts/screenshot_gallery.py``, which
writes the README's screenshot the same way.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "screenshot_gallery", ROOT / "scripts" / "screenshot_gallery.py"
)
gallery = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gallery  # before running it: its dataclass looks its module up
_spec.loader.exec_module(gallery)

from selenium.webdriver.common.by import By  # noqa: E402  (selenium: the dev extra)

MISSING = gallery.missing_browser()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no browser to drive: {MISSING}")

PAGE = 48  # the page's page size


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    return gallery.ciphertexts(PAGE + 12)


@pytest.fixture
def cloud(tmp_path):
    with gallery.running_cloud(tmp_path / "cloud") as cloud:
        yield cloud


@pytest.fixture
def browser(tmp_path):
    with gallery.chromium(tmp_path / "profile") as driver:
        yield driver


def text(element) -> str:
    """Its text, shown or not (selenium's ``.text`` is empty for a hidden element)."""
    return " ".join(element.get_attribute("textContent").split())


def figures_of(browser) -> list:
    return browser.find_elements(By.CSS_SELECTOR, "#grid figure")


def figure_ids(browser) -> list[int]:
    return [int(f.get_attribute("data-id")) for f in figures_of(browser)]


def label_of(rows: dict, class_name: str) -> int:
    """The label a class name stands for (the chips come in label order)."""
    return next(r["label"] for r in rows.values() if r["class_name"] == class_name)


def stored_token(browser) -> str | None:
    return browser.execute_script("return sessionStorage.getItem('noiseveil-token');")


def test_an_operator_logs_in_sees_every_ciphertext_filters_by_label_and_is_remembered(
    cloud, browser, bodies, tmp_path
) -> None:
    rows = {row["id"]: row for row in cloud.upload(bodies[:20])}
    by_label = Counter(row["class_name"] for row in rows.values())
    browser.get(cloud.server.base + "/")
    assert browser.find_element(By.ID, "login").is_displayed()
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"
    assert not browser.find_element(By.ID, "app").is_displayed()

    # a wrong token: one clear line, no gallery, nothing remembered
    gallery.log_in(browser, "nv_not-a-token")
    error = browser.find_element(By.ID, "login-error")
    gallery.wait(browser).until(lambda _: error.text)
    assert error.is_displayed() and error.text == (
        "Could not open the gallery: 401: unknown or revoked token"
    ), error.text
    assert not browser.find_element(By.ID, "app").is_displayed() and figure_ids(browser) == []
    assert stored_token(browser) is None

    # the user's token: every ciphertext, newest first, each image decoded, each captioned
    gallery.log_in(browser, cloud.user)
    figures = gallery.wait_for_gallery(browser, len(rows))
    assert not browser.find_element(By.ID, "login").is_displayed() and error.text == ""
    assert figure_ids(browser) == sorted(rows, reverse=True)
    sizes = browser.execute_script(
        "return [...document.querySelectorAll('#grid img')].map((i) => [i.naturalWidth, i.naturalHeight]);"
    )
    assert sizes == [[32, 32]] * len(rows)  # the PNGs as stored, scaled up by the page only
    for figure in figures:
        row = rows[int(figure.get_attribute("data-id"))]
        caption = figure.find_element(By.TAG_NAME, "figcaption")
        assert text(caption.find_element(By.CLASS_NAME, "class")) == row["class_name"]
        assert text(caption.find_element(By.CLASS_NAME, "id")) == f"#{row['id']}"
        assert text(caption.find_element(By.CLASS_NAME, "model")) == gallery.MODEL
        when = caption.find_element(By.TAG_NAME, "time")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", text(when)), text(when)
        uploaded = datetime.fromisoformat(row["uploaded_at"])
        uploaded = uploaded if uploaded.tzinfo else uploaded.replace(tzinfo=UTC)  # SQLite: naive UTC
        shown = datetime.fromisoformat(when.get_attribute("datetime").replace("Z", "+00:00"))
        assert abs((shown - uploaded).total_seconds()) < 1
    summary = browser.find_element(By.ID, "summary")
    assert summary.text == f"{len(rows)} ciphertexts stored, in {len(by_label)} labels."
    chips = browser.find_elements(By.CSS_SELECTOR, "#counts .chip")
    assert [text(c) for c in chips] == [f"all labels {len(rows)}"] + [
        f"{name} {n}" for name, n in sorted(by_label.items(), key=lambda kv: label_of(rows, kv[0]))
    ]
    # readable: no chip's text in its own background colour (as every inactive chip once was)
    colours = browser.execute_script(
        "return [...document.querySelectorAll('#counts .chip')].map((c) => {"
        "  const s = getComputedStyle(c); return [s.color, s.backgroundColor]; });"
    )
    assert all(fg != bg for fg, bg in colours), colours
    browser.save_screenshot(str(tmp_path / "gallery.png"))
    assert Image.open(tmp_path / "gallery.png").size == gallery.WINDOW

    # a label's chip: only its ciphertexts, as many as its count
    name, count = by_label.most_common(1)[0]
    chip = next(c for c in chips if text(c) == f"{name} {count}")
    label = int(chip.get_attribute("data-label"))
    chip.click()
    gallery.wait(browser).until(
        lambda d: sorted(figure_ids(d)) == sorted(i for i, r in rows.items() if r["label"] == label)
    )
    gallery.wait(browser).until(gallery.images_loaded)
    assert {f.get_attribute("data-label") for f in figures_of(browser)} == {str(label)}
    assert summary.text.endswith(f"Showing only {name} ({count}).")
    active = browser.find_elements(By.CSS_SELECTOR, "#counts .chip.active")
    assert [text(c) for c in active] == [f"{name} {count}"]

    # the token never went into a URL; a reload opens the gallery without asking again
    assert cloud.user not in browser.current_url
    assert stored_token(browser) == cloud.user
    browser.refresh()
    gallery.wait_for_gallery(browser, len(rows))
    assert not browser.find_element(By.ID, "login").is_displayed()

    # "Forget token": back to the login form, nothing remembered
    browser.find_element(By.ID, "logout").click()
    gallery.wait(browser).until(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert stored_token(browser) is None and not browser.find_element(By.ID, "app").is_displayed()


def test_load_more_shows_the_next_page_once_however_often_it_is_clicked(cloud, browser, bodies) -> None:
    ids = sorted((row["id"] for row in cloud.upload(bodies)), reverse=True)
    assert len(ids) > PAGE
    browser.get(cloud.server.base + "/")
    gallery.log_in(browser, cloud.user)
    gallery.wait_for_gallery(browser, PAGE)
    assert figure_ids(browser) == ids[:PAGE]
    more = browser.find_element(By.ID, "more")
    assert more.is_displayed()
    browser.execute_script("arguments[0].click(); arguments[0].click();", more)  # an impatient double click
    gallery.wait_for_gallery(browser, len(ids))
    gallery.wait(browser).until(lambda _: not more.is_displayed())
    assert figure_ids(browser) == ids  # each once, newest first


def test_the_api_docs_render_from_the_cloud_alone(cloud, browser, tmp_path) -> None:
    """/docs in a real browser on a machine with no internet: Swagger UI lists the API, and every
    resource the page loaded came from the cloud itself (issue 27: its scripts came from a CDN,
    so the page was blank offline)."""
    base = cloud.server.base
    browser.get(f"{base}/docs")
    titles = gallery.wait(browser).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")
    )
    assert "noiseveil cloud" in text(titles[0])
    assert gallery.wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {text(e) for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/images", "/v1/labels"} <= paths
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert loaded and set(loaded) == {base.removeprefix("http://")}, loaded
    browser.save_screenshot(str(tmp_path / "docs.png"))
