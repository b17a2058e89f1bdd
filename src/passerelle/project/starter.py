"""`passerelle init`: copy the commented starter project."""

from __future__ import annotations

import shutil
from pathlib import Path

from passerelle.errors import PasserelleError

STARTER = Path(__file__).parent / "starter"


def init_project(target: Path) -> list[Path]:
    if (target / "passerelle.yml").exists():
        raise PasserelleError(f"{target} already holds a Passerelle project.",
                              "Choose another folder; nothing was changed.")
    if target.exists() and any(target.iterdir()):
        raise PasserelleError(f"{target} is not empty.",
                              "Choose an empty or new folder; nothing was changed.")
    shutil.copytree(STARTER, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.duckdb*"))
    return sorted(p for p in target.rglob("*") if p.is_file())
