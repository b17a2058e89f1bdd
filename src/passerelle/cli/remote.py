"""The command line as a client of a running `passerelle serve`.

While a server runs for a project it owns the warehouse (DuckDB admits one writer), and
``.passerelle/server.json`` says where it listens. Commands that write (run, segment
refresh, audience build, export) then send a job and follow it; commands that read call the
server's GET routes. With no server, commands open the warehouse themselves, as before.
Credentials: ``PASSERELLE_TOKEN``, else the token `passerelle login` stored for the server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from passerelle.cli.common import app, console, err_console, exit_for, print_json
from passerelle.errors import ExitCode, PasserelleError

SERVER_FILE = Path(".passerelle") / "server.json"
TOKEN_ENV = "PASSERELLE_TOKEN"
POLL_SECONDS = 0.25


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "passerelle" / "credentials.json"


class RemoteError(PasserelleError):
    """An error the server (or a job) answered with; keeps its exit code."""

    def __init__(self, reason: str, instruction: str | None = None,
                 exit_code: int = ExitCode.USER_ERROR, status: int | None = None) -> None:
        super().__init__(reason, instruction)
        self.exit_code = ExitCode(exit_code)
        self.status = status  # the HTTP status, when the server answered


def server_of(project_dir: Path) -> dict[str, Any] | None:
    """The server running for the project, from its server.json; None when there is none
    or when the file is stale (its process is gone: the server was killed)."""
    try:
        info = json.loads((Path(project_dir) / SERVER_FILE).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another account's process: it runs
        pass
    return {"url": url, "pid": pid}


def remote_server(project_dir: Path) -> Remote | None:
    info = server_of(project_dir)
    return None if info is None else Remote(info["url"], token_for(info["url"]))


def token_for(url: str) -> str | None:
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    try:
        return json.loads(credentials_path().read_text()).get(url)
    except (OSError, ValueError, AttributeError):
        return None


def store_token(url: str, token: str) -> Path:
    """Keep ``token`` for ``url`` in the credentials file, readable by its owner only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    stored[url] = token
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have been created with wider rights
    with os.fdopen(fd, "w") as out:
        json.dump(stored, out, indent=2)
    return path


@dataclass
class Remote:
    url: str
    token: str | None = None
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx  # only commands that talk to a server pay for it

        try:
            response = httpx.request(method, self.url + path, headers=self.headers,
                                     timeout=60, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(f"The Passerelle server at {self.url} does not answer ({exc}).",
                              "Check that `passerelle serve` still runs, or stop it cleanly "
                              "to work on the warehouse directly.",
                              ExitCode.EXTERNAL_ERROR) from exc
        if response.is_success:
            return response.json()
        raise _answer_error(self.url, response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def job(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Queue a job, print its progress on stderr until it ends, return it."""
        job_id = self.post("/api/jobs", {"kind": kind, "params": params})["job_id"]
        err_console.print(f"[dim]Sent to the server at {self.url} as job {job_id}.[/dim]",
                          highlight=False)
        step, seen = None, 0
        while True:
            job = self.get(f"/api/jobs/{job_id}")
            progress = job["progress"]
            for message in progress["messages"][seen:]:
                err_console.print(message, highlight=False)
            seen = len(progress["messages"])
            if progress["step"] != step and progress["step"]:
                step = progress["step"]
                err_console.print(f"[dim]… {step}[/dim]", highlight=False)
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(POLL_SECONDS)

    def result(self, job: dict[str, Any]) -> Any:
        """The job's result; a job that ended without one raises its error."""
        if job["result"] is None:
            raise job_error(job)
        return job["result"]


def job_error(job: dict[str, Any]) -> RemoteError:
    error = job["error"] or {}
    return RemoteError(error.get("reason") or f"Job {job['job_id']} ended {job['status']}.",
                       error.get("instruction"),
                       error.get("exit_code") or job["exit_code"] or ExitCode.USER_ERROR)


def _answer_error(url: str, response: Any) -> RemoteError:
    try:
        body = response.json()
        message, instruction = body["message"], body.get("instruction")
    except (ValueError, KeyError, TypeError):
        message, instruction = f"The server answered {response.status_code}.", None
    if response.status_code == 401:  # the server's hint is for HTTP clients: say the CLI's
        return RemoteError(message, f"Sign in with `passerelle login` (or set {TOKEN_ENV}) "
                           f"for {url}.", status=401)
    if response.status_code == 403:
        return RemoteError(message, instruction, status=403)
    code = ExitCode.USER_ERROR if response.status_code < 500 else (
        ExitCode.INTERNAL_ERROR if response.status_code == 500 else ExitCode.EXTERNAL_ERROR)
    return RemoteError(message, instruction, code, response.status_code)


def finish_run(remote: Remote, job: dict[str, Any], as_json: bool = False) -> None:
    """Print what a run job did and exit as `passerelle run` would have."""
    result = remote.result(job)
    if as_json:
        print_json({k: v for k, v in result.items() if k != "summary"})
    else:
        sys.stdout.write(result["summary"])
    exit_for(_RunOutcome([job_error({"job_id": job["job_id"], "status": job["status"],
                                     "exit_code": e["exit_code"], "error": e})
                          for e in result["errors"]], [None] * result["failed_checks"],
                         [_Step(s["step"], s["target"], s["message"]) for s in result["steps"]
                          if s["status"] == "failed" and s["step"] != "run"],
                         ExitCode(job["exit_code"] or 0)))


@dataclass
class _Step:
    step: str
    target: str
    message: str | None


@dataclass
class _RunOutcome:  # what exit_for reads of a RunResult
    errors: list[RemoteError]
    failed_checks: list[None]
    failed_steps: list[_Step]
    exit_code: ExitCode


@app.command()
def login(
    project: Annotated[Path, typer.Option(
        "--project", "-p", envvar="PASSERELLE_PROJECT", help="Project folder whose running "
        "server to sign in to.", show_default="current folder")] = Path("."),
    url: Annotated[str | None, typer.Option(help="Server URL (default: the project's "
                                                 "running server).")] = None,
    token: Annotated[str | None, typer.Option(help="Store this API token (psl_...) instead "
                                                   "of signing in with e-mail and password.")]
    = None,
) -> None:
    """Sign in to a Passerelle server, so commands can send it their work."""
    if url is None:
        info = server_of(project)
        if info is None:
            raise PasserelleError("No Passerelle server runs for this project.",
                                  "Start one with `passerelle serve`, or give --url.")
        url = info["url"]
    url = url.rstrip("/")
    if token is None:
        email = typer.prompt("E-mail")
        password = typer.prompt("Password", hide_input=True)
        try:
            answer = Remote(url).post("/api/session", {"email": email, "password": password,
                                                       "client": "cli"})
        except RemoteError as exc:
            if exc.status != 404:
                raise
            answer = None
        token = answer.get("token") if isinstance(answer, dict) else None
        if not token:
            raise PasserelleError("This server's sign-in gives no token to the command line.",
                                  "Create a token (`passerelle tokens create`) and store it "
                                  "with `passerelle login --token psl_...`.")
    path = store_token(url, token)
    console.print(f"[green]✓[/green] Token stored for {url} in {path}.", highlight=False)


def segment_path(value: str) -> str:
    """One path segment: a name or an e-mail never becomes another route."""
    from urllib.parse import quote

    return quote(value, safe="")


def run_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GET /api/runs rows with their times as datetimes again (the table computes
    durations)."""
    from datetime import datetime

    return [{**r, **{k: datetime.fromisoformat(r[k]) for k in ("started_at", "finished_at")}}
            for r in rows]


def metrics_table(answer: dict[str, Any]) -> Any:
    """POST /api/metrics/query's answer as the Arrow table the CLI prints."""
    import pyarrow as pa

    return pa.Table.from_pylist(answer["rows"]) if answer["rows"] else \
        pa.table({c: pa.array([], pa.string()) for c in answer["columns"]})
