"""Headless Chromium for the web UI's end-to-end tests.

Selenium drives Debian's ``chromium`` through Debian's ``chromium-driver`` (both from the
same source package, so driver and browser always match). Nothing is downloaded: both
paths are given explicitly, so Selenium Manager is never asked for a driver or a browser
(and ``SE_OFFLINE`` forbids it to go online should it run). ``scripts/setup.sh`` installs
the two packages when they are missing.

Screenshots go to ``screenshots/`` at the repository root (git-ignored) for reviewers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)  # CSS pixels of a common phone


def start_chromium():
    """A headless Chromium session (the caller quits it)."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "chromium and chromedriver are needed for the browser tests: "
            "apt-get install chromium chromium-driver (scripts/setup.sh does it)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--lang=en-US",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@dataclass
class Browser:
    """A Chromium session on one base URL, with a few helpers for readable tests."""

    driver: object  # selenium.webdriver.Chrome
    base_url: str

    def go(self, path: str) -> None:
        self.driver.get(self.base_url + path)
        self._settled()

    def _settled(self) -> None:
        """Wait until the current document has loaded (a click's navigation included)."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, 30).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    @property
    def path(self) -> str:
        url = self.driver.current_url
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    @property
    def title(self) -> str:
        return self.driver.title

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        """The element's text; retried while a navigation replaces the document under it
        (Chromium then reports a stale element or a node that left the document)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        for attempt in range(20):
            try:
                return self.find(css).text
            except (StaleElementReferenceException, WebDriverException):
                if attempt == 19:
                    raise
                time.sleep(0.1)
                self._settled()
        raise AssertionError("unreachable")

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def submit(self, css: str = "main form button[type=submit]") -> None:
        """Click a submit button and wait for the next document to load.

        The old document is marked before the click; the wait ends once a document without
        the mark is complete. (Selenium's ``staleness_of`` is not enough: Chromium may answer
        "node does not belong to the document" instead of a stale element while navigating.)
        """
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        button = self.find(css)
        self.driver.execute_script("window.__stratusLeft = true")
        button.click()
        WebDriverWait(self.driver, 30, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return !window.__stratusLeft && document.readyState === 'complete'"
            )
        )

    def sign_in(self, username: str, password: str) -> None:
        self.go("/login")
        self.fill("#username", username)
        self.fill("#password", password)
        self.submit()

    def sign_out(self) -> None:
        self.driver.delete_all_cookies()

    def screenshot(self, name: str, *, size: tuple[int, int] = DESKTOP) -> Path:
        """The whole page, laid out for a viewport ``size`` (width, height; a phone size
        also emulates a mobile device), as ``screenshots/<name>.png``."""
        import base64

        SCREENSHOTS.mkdir(exist_ok=True)
        driver = self.driver
        width, height = size
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        try:
            content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            shot = driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {
                        "x": 0,
                        "y": 0,
                        "width": width,
                        "height": min(max(height, content["height"]), 8000),
                        "scale": 1,
                    },
                },
            )
        finally:
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One Chromium per test module (starting one costs about a second)."""
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def browser_on(chromium, base_url: str) -> Browser:
    """A clean session (no cookies) of the module's Chromium on ``base_url``."""
    chromium.get(base_url + "/health")  # cookies can only be cleared for the current site
    chromium.delete_all_cookies()
    chromium.set_window_size(*DESKTOP)
    return Browser(chromium, base_url)
