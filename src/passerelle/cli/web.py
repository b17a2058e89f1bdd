"""`passerelle screenshots`: a picture of each page of the web app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passerelle.cli.common import ProjectOpt, app, console, open_project


@app.command("screenshots")
def screenshots(
    directory: Annotated[Path, typer.Argument(help="Folder to write the PNG files into.")],
    user: Annotated[str, typer.Option(
        "--as", help="E-mail of the user whose pages are shown (their role decides what is "
                     "masked).")],
    project: ProjectOpt = Path("."),
    width: Annotated[int, typer.Option(min=320, max=3840, help="Page width in pixels.")]
    = 1280,
) -> None:
    """Write a PNG of each web page (1280 px wide), seen as one user, with Chromium."""
    from passerelle.web.screenshots import take_screenshots

    with open_project(project) as proj:
        written = take_screenshots(proj, directory, user, width)
    for path in written:
        console.print(str(path), highlight=False)
