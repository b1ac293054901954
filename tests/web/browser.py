"""Headless Chromium for the dashboard tests: Debian's `chromium` driven by Playwright (no
browser download), and screenshots of the pages for a reviewer to look at."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

SCREENSHOTS = Path(os.environ.get("SHOPKEEP_SCREENSHOTS", "var/screenshots")).resolve()
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """The system's Chromium; the tests fail (they are not skipped) without one, since CI
    installs it (.ci/run)."""
    configured = os.environ.get("SHOPKEEP_CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("No Chromium found: install Debian's package (apt-get install -y "
                           "chromium) or set SHOPKEEP_CHROMIUM to its path.")
    return found


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, phone: bool = False) -> Page:
    context = await browser.new_context(
        viewport=PHONE if phone else {"width": 1280, "height": 900},
        device_scale_factor=1, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(60_000)
    return page


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


async def sign_in(page: Page, link: str) -> None:
    await page.goto(link)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Overview").wait_for()
