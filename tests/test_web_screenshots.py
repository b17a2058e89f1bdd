"""`passerelle screenshots DIR --as USER`: a PNG per page at 1280 px wide, in Chromium."""

from __future__ import annotations

import struct

from typer.testing import CliRunner

from passerelle.cli import app
from web_helpers import MARKETER


def test_screenshots_writes_a_png_of_each_page_at_1280_px(web_tiny, tmp_path):
    project = web_tiny
    out = tmp_path / "shots"
    result = CliRunner().invoke(app, ["screenshots", str(out), "--as", MARKETER,
                                      "-p", str(project)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.glob("*.png"))
    # a marketer has no Data health page
    assert names == ["api-docs.png", "campaigns.png", "customers.png", "experiments.png",
                     "glossary-proposals.png", "glossary.png", "home.png", "login.png",
                     "profile.png", "segment-builder.png", "segments.png"]
    for png in out.glob("*.png"):
        head = png.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", head[16:24])
        assert width == 1280 and height >= 600, (png.name, width, height)

