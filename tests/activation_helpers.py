"""Small warehouses for the activation tests: ``profiles``, ``traits`` and ``audience_members``
built by hand with the contract of passerelle.segments, and a webhook receiver on a real
local HTTP server that checks signatures and answers what the test scripts."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa

from passerelle.activation.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from passerelle.engines.base import Engine

SECRET = "s3cret-for-tests-0123456789"

PROFILES = {
    "p1": ("Éloïse", "Dupont", "eloise@example.fr", "+33612345678", "Paris"),
    "p2": ("Jean", "Martin", "jean@example.fr", "+33698765432", "Lyon"),
    "p3": ("Zoé", "Le Gall; fils", "zoe@example.fr", None, "Brest"),
    "p4": ("Marc", "Petit", "marc@example.fr", "+33611111111", "Nantes"),
    "p5": ("Inès", "Roux", None, "+33622222222", "Lille"),
    "p6": ("Paul", "Blanc", "paul@example.fr", "+33633333333", "Nice"),
}


def build_profiles(engine: Engine) -> None:
    ids = sorted(PROFILES)
    cols = list(zip(*(PROFILES[i] for i in ids), strict=True))
    table = pa.table({"person_id": ids, "first_name": list(cols[0]),
                      "first_name__source": ["crm"] * len(ids), "last_name": list(cols[1]),
                      "email": list(cols[2]), "phone": list(cols[3]), "city": list(cols[4]),
                      "record_count": [1] * len(ids)})
    engine.drop("profiles")
    engine.append_arrow("profiles", table.to_reader())
    traits = pa.table({"person_id": ["p1", "p2"], "trait": ["clv_12m", "clv_12m"],
                       "value_number": [120.5, 80.0], "value_text": pa.array([None, None],
                                                                              pa.string()),
                       "value_date": pa.array([None, None], pa.date32())})
    engine.drop("traits")
    engine.append_arrow("traits", traits.to_reader())


def build_audience(engine: Engine, audience: str, treated: list[str], holdout: list[str],
                   run_id: str, built_at: datetime, emails: dict[str, str] | None = None,
                   ) -> None:
    """Append one build of ``audience`` (e-mail and phone from PROFILES unless overridden)
    and record it as the audience's last build."""
    emails = emails or {}
    people = [(p, "treated") for p in treated] + [(p, "holdout") for p in holdout]
    table = pa.table({
        "audience": [audience] * len(people),
        "person_id": [p for p, _ in people],
        "group": [g for _, g in people],
        "email": [emails.get(p, PROFILES[p][2]) for p, _ in people],
        "phone": [PROFILES[p][3] for p, _ in people],
        "run_id": [run_id] * len(people),
        "built_at": pa.array([built_at] * len(people), pa.timestamp("us")),
    }, schema=pa.schema([("audience", pa.string()), ("person_id", pa.string()),
                         ("group", pa.string()), ("email", pa.string()),
                         ("phone", pa.string()), ("run_id", pa.string()),
                         ("built_at", pa.timestamp("us"))]))
    engine.append_arrow("audience_members", table.to_reader())
    n_treated = len(treated)
    build = pa.table({
        "audience": [audience], "segment": ["seg"], "channel": ["email"], "run_id": [run_id],
        "built_at": pa.array([built_at], pa.timestamp("us")),
        "segment_members": [n_treated + len(holdout)], "no_consent": [0],
        "no_identifier": [0], "eligible": [n_treated + len(holdout)],
        "holdout": [len(holdout)], "treated": [n_treated]})
    if engine.exists("audience_builds"):
        engine.delete_where_in("audience_builds", "audience", [audience])
    engine.append_arrow("audience_builds", build.to_reader())


class Receiver:
    """A webhook endpoint on 127.0.0.1: records every request, checks its signature and
    answers from ``script`` (an int status, or "timeout": answer after ``delay`` seconds),
    then ``default`` once the script is used up."""

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.script: list[int | str] = []
        self.default: int | str = 200
        self.delay = 0.6
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signature = self.headers.get(SIGNATURE_HEADER, "")
                timestamp = self.headers.get(TIMESTAMP_HEADER, "")
                action = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.requests.append({
                    "body": body, "json": json.loads(body), "action": action,
                    "valid": verify(receiver.secret, body, signature, timestamp),
                    "key": self.headers.get(IDEMPOTENCY_HEADER), "path": self.path})
                if action == "timeout":
                    time.sleep(receiver.delay)
                    action = 200
                try:
                    self.send_response(int(action))
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok" if int(action) < 300 else b"refused")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
