"""A screenshot of the cloud's gallery page, for the README: results/service/gallery.png.

    python scripts/screenshot_gallery.py              # 20 ciphertexts; --images N, --out FILE

Starts ``noiseveil serve`` (the EtC CIFAR-10 model) on a free loopback port, makes a provider
and a user token with the admin token it prints, uploads EtC ciphertexts of CIFAR-10 test
images, opens the page in headless Chromium, logs in with the user token, waits until every
image has loaded and saves a 1280x900 screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(the ``dev`` extra); nothing is downloaded. ``tests/test_web.py`` drives the page with the
helpers here: the browser's setup and the cloud's are in this one place.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from noiseveil.app.provenance import RESULTS_DIR
from noiseveil.app.service.client import CloudClient
from noiseveil.app.service.launcher import ServerProcess

MODEL = "etc-cifar10-convmixer"  # exact recovery, fast encryption
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; selenium-manager is never asked to fetch one
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
WAIT = 30.0  # seconds an explicit wait may take on a busy 2-core machine
OUT = RESULTS_DIR / "service" / "gallery.png"


def missing_browser() -> str | None:
    """Why the browser cannot run here (one line), or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing: apt-get install {package} (.ci/run does)"
    return None


def ciphertexts(n: int, seed: int = 7) -> list[bytes]:
    """``n`` EtC ciphertext PNGs (the model's public demo key) of CIFAR-10 test images."""
    from noiseveil.data import fixed_subset, load_dataset, to_tensor
    from noiseveil.io.png import ciphertext_to_bytes
    from noiseveil.zoo import load_scheme

    data = load_dataset("cifar10")
    scheme = load_scheme(MODEL)
    images = data.x_test[fixed_subset(len(data.x_test), n, seed=seed)]
    return [ciphertext_to_bytes(c) for c in scheme.encrypt(to_tensor(images), scheme.demo_key())]


@dataclass
class Cloud:
    server: ServerProcess
    provider: str  # tokens
    user: str

    def upload(self, bodies: list[bytes]) -> list[dict[str, Any]]:
        """The stored rows (id, label, class_name, uploaded_at...), in upload order."""
        with CloudClient(self.server.base, self.provider) as client:
            rows = [client.upload(body) for body in bodies]
        assert not any(row["duplicate"] for row in rows), "a ciphertext was stored already"
        return rows


@contextmanager
def running_cloud(data_dir: Path) -> Iterator[Cloud]:
    """A fresh ``noiseveil serve`` with a provider and a user token; stopped on exit."""
    server = ServerProcess(data_dir, models=(MODEL,))
    try:
        provider, user = server.new_token("provider", "screenshot lab"), server.new_token("user", "operator")
        yield Cloud(server, provider, user)
    finally:
        server.stop()


@contextmanager
def chromium(profile_dir: Path) -> Iterator[WebDriver]:
    """Headless Chromium (Debian's binary and driver) with a fresh profile in ``profile_dir``."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # as root (CI)
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        # the viewport itself, not the window around it: screenshots are WINDOW exactly
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def log_in(driver: WebDriver, token: str) -> None:
    """Type ``token`` into the login form and submit it."""
    field = wait(driver).until(ec.visibility_of_element_located((By.ID, "token")))
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def images_loaded(driver: WebDriver) -> bool:
    """Every image in the grid is decoded and has a size (a broken or pending one has none)."""
    return driver.execute_script(
        "const imgs = [...document.querySelectorAll('#grid img')];"
        "return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);"
    )


def idle(driver: WebDriver) -> bool:
    """No page of the gallery is loading (the grid is ``aria-busy`` while one is)."""
    return driver.find_element(By.ID, "grid").get_attribute("aria-busy") != "true"


def wait_for_gallery(driver: WebDriver, count: int) -> list:
    """The gallery's figures once it shows ``count`` of them, every image loaded, nothing loading."""
    wait(driver).until(ec.visibility_of_element_located((By.ID, "app")))
    wait(driver).until(idle)
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid figure")) == count)
    wait(driver).until(images_loaded)
    return driver.find_elements(By.CSS_SELECTOR, "#grid figure")


def screenshot(n: int, out: Path) -> Path:
    """Serve, upload ``n`` ciphertexts, open the gallery as a user, save it to ``out``."""
    bodies = ciphertexts(n)
    with (
        tempfile.TemporaryDirectory(prefix="nv-gallery-") as tmp,
        running_cloud(Path(tmp) / "cloud") as cloud,
        chromium(Path(tmp) / "profile") as driver,
    ):
        cloud.upload(bodies)
        driver.get(cloud.server.base + "/")
        log_in(driver, cloud.user)
        wait_for_gallery(driver, min(n, 48))
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="ciphertexts to upload (default 20)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT})")
    args = parser.parse_args(argv)
    reason = missing_browser()
    if reason:
        print(f"screenshot_gallery: {reason}", file=sys.stderr)
        return 1
    print(screenshot(args.images, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
