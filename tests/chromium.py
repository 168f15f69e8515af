"""Debian's chromium, headless, driven through Selenium with Debian's chromedriver: the
console's browser tests and bench B9 start it the same way (scripts/test installs both
packages)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Root in a container: no sandbox, no /dev/shm of any size, no GPU.
_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")


def chromium_installed() -> bool:
    return shutil.which("chromium") is not None and CHROMEDRIVER.exists()


def headless_chromium(
    width: int, height: int, *, script_timeout_s: float, extra_args: tuple[str, ...] = ()
) -> WebDriver:
    """A headless chromium whose window is ``width`` x ``height``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (*_ARGS, *extra_args, f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(script_timeout_s)
    return driver
