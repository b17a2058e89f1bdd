"""The collector as a website uses it: Segment's own browser tag (analytics-next, from npm) in
Debian's Chromium, on a page of another origin, posting to a real `passerelle serve`.

Needs /usr/bin/chromium (Debian: `apt-get install -y chromium`) and npm; a missing one fails
the test with what to install. Playwright only drives that Chromium, it never downloads one.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import orjson
import pytest

import passerelle
from browser_helpers import npm_package
from collect_helpers import KEY, Server, free_port, write_project

CHROMIUM = Path("/usr/bin/chromium")
TAG = "@segment/analytics-next"

PAGE = """<!doctype html>
<html><head><title>shop</title>
<script src="/analytics-next/bundles/index.js"></script>
<script>
  // the snippet of docs/collect.md, as a shop's page holds it
  window.analytics = AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: "%(key)s",
     cdnSettings: {integrations: {"Segment.io": {apiKey: "%(key)s"}},
                   metrics: {flushTimer: 300}}},
    {integrations: {"Segment.io": {apiHost: "%(api_host)s", protocol: "http"}}});
</script></head><body>shop</body></html>
"""


def tag_bundles() -> Path:
    """The tag's browser bundles, installed by npm from tests/browser/package-lock.json."""
    return npm_package(TAG) / "dist" / "umd"


@pytest.fixture
def shop_site(tmp_path):
    """The shop's pages on another origin than the collector (another port)."""
    site = tmp_path / "site"
    (site / "analytics-next").mkdir(parents=True)
    (site / "analytics-next" / "bundles").symlink_to(tag_bundles())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_browser_tag_delivers_every_event_once(tmp_path, shop_site):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    site, shop = shop_site
    project = write_project(tmp_path / "proj", extra_connector={"allowed_origins": [shop]})
    server = Server(project, cli=True).start()
    api_host = server.url.removeprefix("http://") + "/v1"
    (site / "index.html").write_text(PAGE % {"key": KEY, "api_host": api_host})
    outside: list[str] = []  # the test must not depend on (or reach) Segment's servers
    answers: dict[str, list[int]] = {}
    authorized: list[bool] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_()
                       if route.request.url.startswith("http://127.0.0.1:")
                       else (outside.append(route.request.url), route.abort()))
            page.on("response", lambda r: answers.setdefault(
                r.request.method + " " + r.url.removeprefix(server.url), []).append(r.status))
            page.on("request", lambda r: r.url == server.url + "/v1/t" and authorized.append(
                r.headers.get("authorization", "").startswith("Basic ")))
            page.goto(shop + "/index.html")
            page.evaluate("""async () => {
                const [analytics] = await window.analytics;
                await analytics.identify("cust-42", {email: "marie@example.fr",
                                                     firstName: "Marie"});
                await analytics.track("Order Completed", {order_id: "o-1", revenue: 59.9});
                await analytics.page("Checkout", {path: "/checkout"});
            }""")
            page.wait_for_timeout(600)  # the tag's metrics flush (flushTimer: 300 ms)
            browser.close()
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    assert not outside, f"the tag reached outside the test: {outside}"
    # an Authorization header makes the browser ask a preflight first (Playwright does not
    # report preflights): the POSTs that follow passed it
    assert authorized == [True]
    for path in ("/v1/i", "/v1/t", "/v1/p"):
        assert answers.get("POST " + path) == [200], answers
    assert set(answers.get("POST /v1/m", [])) == {200}, answers

    with passerelle.open(project) as proj:
        rows = proj.engine.table("raw_web_tracking").select(
            "messageId", "type", "event", "name", "userId", "email", "properties", "context",
        ).to_pyarrow().to_pylist()
    assert len({r["messageId"] for r in rows}) == len(rows) == 3, rows
    by_type = {r["type"]: r for r in rows}
    assert set(by_type) == {"identify", "track", "page"}
    assert all(r["userId"] == "cust-42" for r in rows)
    assert by_type["identify"]["email"] == "marie@example.fr"
    track = by_type["track"]
    assert track["event"] == "Order Completed"
    assert orjson.loads(track["properties"]) == {"order_id": "o-1", "revenue": 59.9}
    assert by_type["page"]["name"] == "Checkout"
    assert orjson.loads(by_type["page"]["properties"])["path"] == "/checkout"
    library = orjson.loads(track["context"])["library"]
    assert library["name"] == "analytics.js" and "1.84.3" in library["version"]
