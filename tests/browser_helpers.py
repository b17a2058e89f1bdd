"""What the browser tests load from npm (tests/browser/package.json, pinned by its lock file),
installed once however many test processes ask at the same time."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).parent / "browser"  # package.json + package-lock.json


def npm_package(name: str) -> Path:
    """The folder of the pinned npm package ``name`` under tests/browser/node_modules, running
    `npm ci` first when it is missing or not the pinned version. `npm ci` empties node_modules
    before it fills it, so the check and the install hold a lock: a second pytest worker waits
    for the first one's install instead of reading a half-written folder."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is missing: the browser tests install {name} with it "
                    "(Debian: apt-get install -y npm)")
    pinned = json.loads((BROWSER_DIR / "package.json").read_text())["dependencies"][name]
    installed = BROWSER_DIR / "node_modules" / name / "package.json"
    with (BROWSER_DIR / ".npm-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"`npm ci` in {BROWSER_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return installed.parent
