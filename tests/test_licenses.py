"""Every package of the default install has a license compatible with Apache-2.0 use."""

from __future__ import annotations

import importlib.metadata as md
import re

from packaging.requirements import Requirement

FORBIDDEN = re.compile(r"elastic|sspl|busl|business source|commons clause|proprietary|"
                       r"(?<!L)GPL|AGPL", re.I)
ALLOWED = re.compile(r"MIT|BSD|Apache|ISC|Unlicense|PSF|Python Software|MPL|CC0|0BSD|Zlib|"
                     r"LGPL|Dual License", re.I)


def _license(dist: md.Distribution) -> str:
    meta = dist.metadata
    parts = [meta.get("License-Expression") or "", (meta.get("License") or "")[:200]]
    parts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return " | ".join(p for p in parts if p)


def _default_install() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(name: str, extras: frozenset[str]) -> None:
        key = name.lower().replace("_", "-")
        if key in found:
            return
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        found[key] = _license(dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                continue
            walk(req.name, frozenset(req.extras))

    walk("passerelle", frozenset())
    return found


def test_default_install_licenses():
    licenses = _default_install()
    assert "duckdb" in licenses and "ibis-framework" in licenses
    bad = {name: lic for name, lic in licenses.items()
           if FORBIDDEN.search(lic) or not ALLOWED.search(lic)}
    assert not bad, f"packages with an incompatible or unknown license: {bad}"
