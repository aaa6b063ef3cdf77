"""The dashboard in a real browser (Debian's Chromium driven by Playwright) after
`journeybus demo`: no console errors, every chart has data, a period change
updates the numbers, and the numbers equal `journeybus query` over the views."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.sinks.duckdb.dashboard.server import DashboardServer
from streams.attribution.models import ALL_MODELS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("JOURNEYBUS_SCREENSHOTS", ROOT / ".journeybus" / "screenshots"))
CLI = [sys.executable, "-m", "streams.app.cli"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)


def journeybus(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def query(sql: str, database: Path) -> list[dict]:
    return json.loads(
        journeybus("query", sql, "--format", "json", "--database", str(database), cwd=ROOT)
    )


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    journeybus("demo", "--customers", "400", "--seed", "5", cwd=workdir)
    database = workdir / ".journeybus" / "journeybus-read.duckdb"
    assert database.exists()
    return database


def serve(database: Path, refresh_s: int = 10) -> Iterator[str]:
    stop = threading.Event()
    server = DashboardServer(database, port=0, refresh_s=refresh_s)
    thread = threading.Thread(target=server.run, args=(stop,), daemon=True)
    thread.start()
    assert server.started.wait(30)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module")
def dashboard(demo_database) -> Iterator[str]:
    yield from serve(demo_database)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def numbers(page, prefix: str) -> dict[tuple, float]:
    """Every ``data-metric`` cell starting with ``prefix``: (metric, dims...) -> value."""
    cells = page.eval_on_selector_all(
        f'[data-metric^="{prefix}"]',
        "els => els.map(e => ({...e.dataset}))",
    )
    out = {}
    for c in cells:
        metric, value = c.pop("metric"), c.pop("value")
        out[(metric, *sorted(c.items()))] = float(value) if value else None
    return out


def attribution_on_page(page) -> dict[tuple[str, str], tuple[float, float]]:
    found = numbers(page, "attribution.")
    out: dict[tuple[str, str], list[float]] = {}
    for (metric, *dims), value in found.items():
        d = dict(dims)
        out.setdefault((d["model"], d["channel"]), [0.0, 0.0])[metric.endswith("value")] = value
    return {k: tuple(v) for k, v in out.items()}


def test_page_loads_without_console_errors_and_every_chart_has_data(dashboard, page):
    page.goto(f"{dashboard}/?period=all")
    screenshot(page, "dashboard-all")
    assert page.console_errors == []
    charts = page.eval_on_selector_all(
        "figure.chart", "els => els.map(e => [e.dataset.chart, +e.dataset.points])"
    )
    names = {name for name, _ in charts}
    assert {
        "attribution",
        "paths",
        "transitions",
        "cohort-channel",
        "cohort-category",
        "responsiveness",
        "stop-email",
        "ingest",
        "freshness",
        "dead-letters",
        "audiences",
        "channel-decisions",
        "message-variants",
        "feed-categories",
    } <= names
    assert all(points > 0 for _, points in charts), charts
    assert page.locator("figure.chart svg").count() == len(charts)


def test_attribution_equals_the_channel_performance_view(dashboard, demo_database, page):
    page.goto(f"{dashboard}/?period=all")
    shown = attribution_on_page(page)
    rows = query(
        "SELECT model, channel, conversions, value FROM channel_performance", demo_database
    )
    expected = {(r["model"], r["channel"]): (r["conversions"], r["value"]) for r in rows}
    assert shown.keys() == expected.keys()
    assert {r["model"] for r in rows} == set(ALL_MODELS)
    for key, pair in expected.items():
        assert shown[key] == pytest.approx(pair, abs=1e-6), key


def test_paths_cohorts_and_responsiveness_equal_their_views(dashboard, demo_database, page):
    page.goto(f"{dashboard}/?period=all")
    paths = {dict(d)["path"]: v for (_, *d), v in numbers(page, "paths.conversions").items()}
    top = query(
        "SELECT path, conversions FROM conversion_paths WHERE path <> '' "
        "ORDER BY conversions DESC, path LIMIT 10",
        demo_database,
    )
    assert paths == {r["path"]: r["conversions"] for r in top}
    cohorts = {
        dict(d)["name"]: v
        for (_, *d), v in numbers(page, "cohorts.customers").items()
        if dict(d)["dimension"] == "acquisition channel"
    }
    by_channel = query(
        "SELECT acquisition_channel, sum(customers) AS customers FROM new_customer_cohorts "
        "GROUP BY ALL",
        demo_database,
    )
    assert cohorts == {r["acquisition_channel"]: r["customers"] for r in by_channel}
    stop = {
        (d["channel"], d["recommendation"], d["preferred"]): v
        for (_, *dims), v in numbers(page, "responsiveness.customers").items()
        for d in [dict(dims)]
    }
    rows = query("SELECT * FROM suppression_by_preferred_channel", demo_database)
    assert stop == {
        (r["channel"], r["recommendation"], r["preferred_channel"]): r["customers"] for r in rows
    }
    assert any(r["recommendation"] == "suppress" for r in rows), "the demo has email to stop"


def test_activation_numbers_equal_their_views(dashboard, demo_database, page):
    page.goto(f"{dashboard}/?period=all")
    members = {dict(d)["audience"]: v for (_, *d), v in numbers(page, "activation.members").items()}
    rows = query("SELECT audience, count(*) AS n FROM audience_members GROUP BY ALL", demo_database)
    assert members == {r["audience"]: r["n"] for r in rows} and members
    decisions = {
        (d["channel"], d["decision"]): v
        for (_, *dims), v in numbers(page, "activation.decisions").items()
        for d in [dict(dims)]
    }
    rows = query("SELECT * FROM channel_decision_counts", demo_database)
    assert decisions == {(r["channel"], r["decision"]): r["customers"] for r in rows}
    assert decisions.get(("email", "suppress"), 0) > 0, "the demo has email to suppress"
    variants = query("SELECT count(*) AS n FROM message_variant_share", demo_database)
    shown = page.eval_on_selector('figure[data-chart="message-variants"]', "e => +e.dataset.points")
    assert shown == variants[0]["n"] > 0, "the demo's campaign was decided"


def test_a_period_change_updates_the_numbers(dashboard, demo_database, page):
    page.goto(f"{dashboard}/?period=all")
    everything = attribution_on_page(page)
    page.select_option("#period", "7d")
    page.wait_for_url("**period=7d**")
    screenshot(page, "dashboard-7d")
    assert page.console_errors == []
    assert "7 days" in page.inner_text("#period-label")
    week = attribution_on_page(page)
    total = {m: sum(v[0] for (mm, _), v in everything.items() if mm == m) for m, _ in everything}
    week_total = {m: sum(v[0] for (mm, _), v in week.items() if mm == m) for m, _ in week}
    assert 0 < week_total["linear"] < total["linear"]
    label = page.inner_text("#period-label")  # "the 7 days START to END"
    start, end = label.split()[-3], label.split()[-1]
    rows = query(
        "SELECT model, channel, sum(conversions) AS conversions, sum(value) AS value "
        f"FROM attribution_daily WHERE day BETWEEN '{start}' AND '{end}' GROUP BY ALL",
        demo_database,
    )
    expected = {(r["model"], r["channel"]): (r["conversions"], r["value"]) for r in rows}
    assert week.keys() == expected.keys()
    for key, pair in expected.items():
        assert week[key] == pytest.approx(pair, abs=1e-6), key


def test_the_page_refreshes_itself(demo_database, page):
    for url in serve(demo_database, refresh_s=1):
        page.goto(f"{url}/?period=30d")
        first = page.inner_text("#updated")
        page.wait_for_function(
            f"document.querySelector('#updated').textContent !== {json.dumps(first)}",
            timeout=10_000,
        )
        assert page.locator("figure.chart").count() >= 10  # the panels came back too
        assert page.console_errors == []


def test_an_empty_database_says_there_is_no_data_yet(tmp_path, page):
    for url in serve(tmp_path / "not-written-yet.duckdb"):
        page.goto(url)
        screenshot(page, "dashboard-empty")
        assert "No data yet" in page.inner_text("main")
        assert page.console_errors == []
