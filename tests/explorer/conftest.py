"""Fixtures for the explorer tests: headless Chromium driven by Selenium, and a consortium.

Chromium and its driver are Debian's (/usr/bin/chromium, /usr/bin/chromedriver). When they
are missing the fixture installs them with apt-get, which needs root and a working apt; where
that cannot be done the browser tests are skipped with the reason. The consortium is four real
node processes started with the e2e helpers (tests/e2e/e2e_helpers.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# tests/<dir> are not packages; the e2e helpers are imported from their directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_TIMEOUT_S = 900
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


def _install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; None on success, else why not."""
    if os.geteuid() != 0:
        return "chromium is not installed and installing it needs root (apt-get)"
    apt = shutil.which("apt-get")
    if apt is None:
        return "chromium is not installed and this system has no apt-get"
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in ([apt, "update"],
                    [apt, "install", "-y", "--no-install-recommends", "chromium",
                     "chromium-driver"]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=environment,
                                    timeout=APT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(command)}` failed: {exc}"
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"`{' '.join(command)}` failed: {' / '.join(tail)}"
    return None


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e .[test])")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        why_not = _install_chromium()
        if why_not is not None:
            pytest.skip(f"headless Chromium unavailable: {why_not}")
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            pytest.skip("apt-get installed chromium but /usr/bin/chromium or "
                        "/usr/bin/chromedriver is still missing")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def browser(chromium: tuple[Path, Path]):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="huzhu-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
