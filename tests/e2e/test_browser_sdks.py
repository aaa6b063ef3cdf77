"""Real browser tracker SDKs, from the npm registry, in headless Chromium, posting to
the collector on another origin: each event on the raw topic exactly once, with the
SDK's protocol, anonymous id and page context, also when the collector is down for
the SDK's first attempts.

The SDKs are pinned in tests/browser_sdks/package.json (package-lock.json) and bundled
into one local script; the page and the script are served from 127.0.0.1, nothing is
fetched at run time.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from tests.integration.test_collector import Collector, start_collector

SDKS = Path(__file__).parents[1] / "browser_sdks"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (.ci/run installs it)",
    ),
]

PAGE = """<!doctype html><html><head><title>Journeybus test shop</title>
<script src="/dist/sdks.js"></script></head><body><h1>Shop</h1></body></html>"""


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The SDKs installed from the lock file and bundled (once per checkout)."""
    if not (SDKS / "node_modules").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SDKS, check=True
        )
    out = SDKS / "dist" / "sdks.js"
    if not out.exists() or out.stat().st_mtime < (SDKS / "entry.js").stat().st_mtime:
        subprocess.run(["npm", "run", "-s", "build"], cwd=SDKS, check=True)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Site(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/dist/"):
            return super().do_GET()
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def shop(bundle) -> Iterator[str]:
    """The retailer's page, on its own origin (localhost: same site, another origin)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Site, directory=str(SDKS)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser_page(shop):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = chromium.new_page()
        page.goto(shop + "/products/p-1?utm_source=newsletter")
        page.wait_for_function("window.SDKS !== undefined")
        yield page
        chromium.close()


def _collector(bootstrap, tmp_path, shop, port: int = 0) -> Iterator[Collector]:
    return start_collector(
        bootstrap,
        tmp_path,
        port=port,
        write_keys={"shop-key": "web"},
        origins={"shop-key": [shop]},
        snowplow_app_ids={"shop-web": "shop-key"},
    )


@pytest.fixture
def collector(bootstrap, tmp_path, shop) -> Iterator[Collector]:
    yield from _collector(bootstrap, tmp_path, shop)


def _wait_records(collector: Collector, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = [r.value for r in collector.records("web")]
        if len(records) >= count or time.monotonic() > deadline:
            time.sleep(1.0)  # anything more (a doubled event) would arrive by now
            return [r.value for r in collector.records("web")]
        time.sleep(0.3)


def _host(url: str) -> str:
    return url.split("//", 1)[1].rstrip("/")


def _each_once(records: list[dict], kinds: list[str], protocol: str, shop: str) -> None:
    """``records`` are the ``kinds`` of events, each once, from ``protocol``, on the web
    source, from the test page."""
    assert sorted(r["event_type"] for r in records) == sorted(kinds)
    assert len({r["event_id"] for r in records}) == len(kinds), "each event once"
    assert {r["protocol"] for r in records} == {protocol}
    assert {r["page"]["url"] for r in records} == {shop + "/products/p-1?utm_source=newsletter"}
    assert {r["source"] for r in records} == {"web"}


SEGMENT = """async ([host, userId]) => {
  const analytics = SDKS.AnalyticsBrowser.load(
    { writeKey: "shop-key",
      cdnSettings: { integrations: { "Segment.io": { apiKey: "shop-key", apiHost: host + "/v1",
                                                       protocol: "http" } } } },
    { retryQueue: true });
  await analytics.page();
  await analytics.track("Product Viewed", { sku: "p-1" });
  await analytics.identify(userId, { plan: "gold" });
  const [instance] = await analytics;
  return instance.user().anonymousId();
}"""


def test_segment_analytics_next(browser_page, collector, shop):
    anonymous_id = browser_page.evaluate(SEGMENT, [_host(collector.url), "u-seg"])
    records = _wait_records(collector, 3)
    _each_once(records, ["identify", "page", "track"], "segment", shop)
    assert {r["anonymous_id"] for r in records} == {anonymous_id}
    (track,) = [r for r in records if r["event_type"] == "track"]
    assert track["event_name"] == "Product Viewed"
    assert orjson.loads(track["properties_json"]) == {"sku": "p-1"}
    assert track["campaign"]["source"] == "newsletter"


SNOWPLOW = """async ([collector]) => {
  const sp = SDKS.snowplow;
  sp.newTracker("sp", collector, { appId: "shop-web", eventMethod: "post", bufferSize: 1,
                                   connectionTimeout: 2000 });
  sp.trackPageView();
  sp.trackStructEvent({ category: "shop", action: "add-to-cart", label: "p-1" });
  return document.cookie;
}"""


def test_snowplow_browser_tracker(browser_page, collector, shop):
    cookies = browser_page.evaluate(SNOWPLOW, [collector.url])
    records = _wait_records(collector, 2)
    _each_once(records, ["page", "track"], "snowplow", shop)
    # the anonymous id is the tracker's domain user id, from its first-party cookie
    duid = next(
        c.split("=", 1)[1].split(".")[0] for c in cookies.split("; ") if c.startswith("_sp_id")
    )
    assert {r["anonymous_id"] for r in records} == {duid}
    (action,) = [r for r in records if r["event_type"] == "track"]
    assert action["event_name"] == "add-to-cart"


JITSU = """async ([collector, userId]) => {
  const jitsu = SDKS.jitsuAnalytics({ host: collector, writeKey: "shop-key" });
  await jitsu.page();
  await jitsu.track("Product Viewed", { sku: "p-1" });
  await jitsu.identify(userId, { plan: "gold" });
  return jitsu.user().anonymousId;
}"""


def test_jitsu(browser_page, collector, shop):
    anonymous_id = browser_page.evaluate(JITSU, [collector.url, "u-jitsu"])
    records = _wait_records(collector, 3)
    _each_once(records, ["identify", "page", "track"], "jitsu", shop)
    assert {r["anonymous_id"] for r in records} == {anonymous_id}


RUDDERSTACK = """async ([collector, userId]) => {
  const rudder = new SDKS.RudderAnalytics();
  rudder.load("shop-key", collector, {
    logLevel: "ERROR",
    // the workspace's source config, given here: no control plane is called
    getSourceConfig: () => ({ source: { id: "shop-src", name: "shop", workspaceId: "ws",
                                        enabled: true, config: {}, destinations: [] } }),
  });
  await new Promise((resolve) => rudder.ready(resolve));
  rudder.page();
  rudder.track("Product Viewed", { sku: "p-1" });
  rudder.identify(userId, { plan: "gold" });
  return rudder.getAnonymousId();
}"""


def test_rudderstack_v3(browser_page, collector, shop):
    anonymous_id = browser_page.evaluate(RUDDERSTACK, [collector.url, "u-rs"])
    records = _wait_records(collector, 3)
    _each_once(records, ["identify", "page", "track"], "rudderstack", shop)
    assert {r["anonymous_id"] for r in records} == {anonymous_id}
    assert {r["channel"] for r in records} == {"web"}
    # v3 sends no rudderId (older SDKs do: the routes test keeps it); its library name
    assert {r["context"]["library_name"] for r in records} == {"RudderLabs JavaScript SDK"}


def test_segment_retries_until_the_collector_is_up(browser_page, bootstrap, tmp_path, shop):
    port = _free_port()  # nothing listens yet: the SDK's first attempts fail
    host = f"localhost:{port}"
    failed: list[str] = []
    browser_page.on("requestfailed", lambda request: failed.append(request.url))
    browser_page.evaluate(
        """([host]) => { window.sent = SDKS.AnalyticsBrowser.load(
            { writeKey: "shop-key", cdnSettings: { integrations: { "Segment.io": {
              apiKey: "shop-key", apiHost: host + "/v1", protocol: "http" } } } });
          window.sent.track("Added While Down", { sku: "p-9" }); }""",
        [host],
    )
    browser_page.wait_for_timeout(3000)  # a few failed attempts (and their events seen)
    assert any(f"{host}/v1/t" in url for url in failed), "the SDK tried while it was down"
    for collector in _collector(bootstrap, tmp_path, shop, port=port):
        records = _wait_records(collector, 1, timeout=60)
        assert [r["event_name"] for r in records] == ["Added While Down"], "once, after retries"
