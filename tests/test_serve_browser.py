"""The playground page in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by selenium): it lists the models, streams a completion, and its Stop button cancels
the generation on the server. Skipped where no browser is installed.

Set RNNGEN_SCREENSHOTS=DIR to keep the screenshots (laptop and phone widths) for a look."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from serving import ServerProcess, tiny_checkpoint

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def test_the_page_is_self_contained():
    from rnngen.serve.playground import PAGE

    assert not re.search(r"(src|href)\s*=", PAGE)  # no scripts, styles or images to fetch
    assert "http://" not in PAGE and "https://" not in PAGE and "@import" not in PAGE
    assert '<meta name="viewport"' in PAGE


webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromedriver are not installed"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoint = tiny_checkpoint(tmp_path_factory.mktemp("page"))
    process = ServerProcess(str(checkpoint), "--max-tokens-cap", "100000")
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def screenshot(browser, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("RNNGEN_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"playground-{name}.png"
    browser.save_screenshot(str(path))
    return path


def wait(browser, condition, what: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(lambda d: condition(d), what)


def by_id(browser, element: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element)


def no_sideways_scroll(browser) -> bool:
    return browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )


@needs_browser
def test_stream_and_stop_on_a_laptop(server, browser, tmp_path):
    browser.set_window_size(1280, 800)
    browser.get(server.url + "/")
    wait(browser, lambda d: by_id(d, "model").get_attribute("value") == "tiny", "models listed")
    prompt = by_id(browser, "prompt")
    prompt.clear()
    prompt.send_keys("the cat")
    length = by_id(browser, "max_tokens")
    length.clear()
    length.send_keys("100000")  # runs until stopped
    before = server.stats()["requests_cancelled"]
    by_id(browser, "generate").click()
    wait(browser, lambda d: len(by_id(d, "output").text) > 200, "text streaming in")
    assert server.stats()["active_streams"] == 1
    assert by_id(browser, "stop").is_enabled() and not by_id(browser, "generate").is_enabled()
    assert no_sideways_scroll(browser)
    screenshot(browser, tmp_path, "laptop")
    by_id(browser, "stop").click()
    wait(browser, lambda d: by_id(d, "status").text == "stopped", "stopped")
    server.wait_for(lambda s: s["active_streams"] == 0 and s["requests_cancelled"] == before + 1,
                    "the server cancelled the stream")  # fmt: skip
    assert by_id(browser, "generate").is_enabled()


@needs_browser
def test_a_whole_completion_on_a_phone(server, browser, tmp_path):
    browser.set_window_size(390, 844)
    browser.get(server.url + "/")
    wait(browser, lambda d: by_id(d, "model").get_attribute("value") == "tiny", "models listed")
    length = by_id(browser, "max_tokens")
    length.clear()
    length.send_keys("60")
    by_id(browser, "generate").click()
    wait(browser, lambda d: by_id(d, "status").text.startswith("done"), "the completion")
    assert by_id(browser, "status").text == "done: 60 tokens (length)"
    assert by_id(browser, "output").text.startswith("ROMEO:")
    assert no_sideways_scroll(browser)
    screenshot(browser, tmp_path, "phone")
    assert httpx.get(server.url + "/health").json()["models"]["tiny"]["active_streams"] == 0
