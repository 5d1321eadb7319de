"""Headless Chromium for the audit report: a screenshot for the README, and the image
check the report's browser test runs.

    python -m annotate.audit.screenshot results/audit/report.html docs/audit_report.png

Drives Debian's ``chromium`` through Selenium and Debian's ``chromedriver``
(``apt-get install chromium chromium-driver``, or ``tools/install_test_browser.sh``). The
driver path is given explicitly, so Selenium Manager never downloads a driver. The
switches below keep Chromium from reaching out to the network (component updates, sync,
QUIC, first-run pings); each session gets a fresh profile folder.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SWITCHES = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars")
# complete and naturalWidth of every <img>, in document order
IMAGES_SCRIPT = ("return Array.from(document.images).map(i => "
                 "({complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}))")


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None when chromium, chromedriver and selenium are present."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} is missing (apt-get install chromium chromium-driver, or tools/install_test_browser.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 1600) -> Iterator:
    """A Selenium WebDriver on headless Chromium with a fresh profile, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="annotate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for switch in SWITCHES + (f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(switch)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def image_states(driver, html_path: str | Path) -> list[dict]:
    """Load a local HTML file and return every image's complete / naturalWidth / naturalHeight."""
    driver.get(Path(html_path).resolve().as_uri())
    return driver.execute_script(IMAGES_SCRIPT)


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1280, height: int = 1600) -> Path:
    """A PNG of the top ``width`` x ``height`` CSS pixels of a rendered HTML file."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with headless_chromium(width, height) as driver:
        driver.get(Path(html_path).resolve().as_uri())
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    png_path.write_bytes(base64.b64decode(shot["data"]))
    return png_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", help="the report (report.html)")
    parser.add_argument("png", help="the screenshot to write")
    parser.add_argument("--width", type=int, default=1280, help="CSS pixels")
    parser.add_argument("--height", type=int, default=1600, help="CSS pixels from the top of the page")
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        parser.exit(2, f"error: {missing}\n")
    print(screenshot(args.html, args.png, args.width, args.height))


if __name__ == "__main__":
    main()
