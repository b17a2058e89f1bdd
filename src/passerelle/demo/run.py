"""`passerelle demo`: generate the demo retailer, then run the pipeline on it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from passerelle.demo.project import PASSWORD_ENV
from passerelle.errors import PasserelleError
from passerelle.pipeline import RunResult
from passerelle.reporter import Reporter, SilentReporter

MARKER = ".passerelle-demo"


@dataclass
class DemoOutcome:
    project_dir: Path
    truth_dir: Path
    manifest: object
    result: RunResult


def parse_mysql_url(url: str) -> dict:
    """``mysql://user:password@host:port/database`` -> connection settings."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mysql", "mariadb") or not parsed.path.strip("/"):
        raise PasserelleError(
            f"'{url}' is not a MySQL/MariaDB URL.",
            "Write it as mysql://user:password@host:3306/database (password optional).",
        )
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": unquote(parsed.username or "root"),
        "password": unquote(parsed.password or ""),
        "database": parsed.path.strip("/"),
    }


def run_demo(directory: Path, size: int = 2000, seed: int = 42, eshop_mysql: str | None = None,
             reporter: Reporter | None = None) -> DemoOutcome:
    import passerelle
    from passerelle.demo.generate import generate_demo

    reporter = reporter or SilentReporter()
    if size < 50:
        raise PasserelleError(f"--size {size} is too small for a meaningful demo.",
                              "Use at least 50 people (the default is 2000).")
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()) and not (directory / MARKER).exists():
        raise PasserelleError(f"{directory} exists and is not a Passerelle demo.",
                              "Choose another folder; nothing was changed.")
    truth_dir = directory.parent / "truth"
    mysql = parse_mysql_url(eshop_mysql) if eshop_mysql else None
    with reporter.step(f"Generating the demo retailer ({size:,} people)"):
        manifest = generate_demo(directory, truth_dir, size=size, seed=seed, eshop_mysql=mysql,
                                 reporter=reporter)
    (directory / MARKER).write_text(f"size={size}\nseed={seed}\n")
    if mysql and mysql["password"]:
        # the project reads the password from the environment, never from its files
        os.environ[PASSWORD_ENV] = mysql["password"]
        reporter.warning(f"Export {PASSWORD_ENV} before running this project again.")
    with passerelle.open(directory, reporter=reporter) as project:
        result = project.run()
    return DemoOutcome(directory, truth_dir, manifest, result)
