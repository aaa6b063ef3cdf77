"""The dashboard page: server-rendered HTML with inline SVG charts.

Every number in a table carries ``data-metric`` (what it is), the dimensions
that identify it (``data-model``, ``data-channel``, ...) and ``data-value``
(unrounded), so a browser test can compare the page with ``journeybus query``.
A few lines of script reload the panels every ``refresh_s`` seconds without
losing the chosen period.
"""

from __future__ import annotations

from html import escape
from typing import Any

from connectors.sinks.duckdb.dashboard.charts import (
    bar_chart,
    flow_diagram,
    grouped_bars,
    line_chart,
    number,
)
from connectors.sinks.duckdb.dashboard.data import MODELS, PERIODS, Dashboard

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#263238;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header h1{font-size:18px;margin:0}header form{margin-left:auto}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px;padding:14px}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
section h2{font-size:15px;margin:4px 0 8px}figure{margin:0 0 10px}
figcaption{font-size:12px;color:#555;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{padding:2px 6px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
.empty{color:#777;font-style:italic}.note{font-size:12px;color:#555}
details summary{cursor:pointer;font-size:12px;color:#345}
"""

SCRIPT = """
const refreshMs = %d * 1000;
async function refresh() {
  try {
    const response = await fetch(location.href, {cache: "no-store"});
    if (response.ok) {
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const open = [...document.querySelectorAll("details[open]")].map(d => d.id);
      document.querySelector("main").replaceWith(doc.querySelector("main"));
      document.querySelector("#updated").textContent =
        doc.querySelector("#updated").textContent;
      open.forEach(id => { const d = document.getElementById(id); if (d) d.open = true; });
    }
  } finally {
    setTimeout(refresh, refreshMs);
  }
}
if (refreshMs > 0) setTimeout(refresh, refreshMs);
"""

MODEL_LABELS = {
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "last_non_direct": "Last non-direct",
    "linear": "Linear",
    "linear_unique": "Linear (unique channels)",
    "position_based": "Position (40/20/40)",
    "w_shaped": "W-shaped (30/30/30/10)",
    "time_decay": "Time decay",
    "markov": "Markov",
    "shapley": "Shapley",
    "shapley_simplified": "Shapley (simplified)",
}


def cell(value: Any, metric: str, digits: int = 1, **dims: str) -> str:
    attrs = "".join(f' data-{k}="{escape(str(v))}"' for k, v in dims.items())
    raw = "" if value is None else repr(float(value))
    return f'<td data-metric="{metric}"{attrs} data-value="{raw}">{number(value, digits)}</td>'


def table(head: list[str], rows: list[str], ident: str, summary: str = "numbers") -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (
        f'<details id="{ident}"><summary>{escape(summary)}</summary><table><thead><tr>{header}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def attribution_panel(board: Dashboard) -> str:
    period = board.period.label
    channels = sorted({r["channel"] for r in board.attribution})
    by_model: dict[str, dict[str, float]] = {MODEL_LABELS[m]: {} for m in MODELS}
    rows = []
    for r in board.attribution:
        label = MODEL_LABELS.get(r["model"], r["model"])
        by_model.setdefault(label, {})[r["channel"]] = float(r["conversions"])
        dims = {"model": r["model"], "channel": r["channel"]}
        rows.append(
            f"<tr><td>{escape(label)}</td><td>{escape(r['channel'])}</td>"
            + cell(r["conversions"], "attribution.conversions", 2, **dims)
            + cell(r["value"], "attribution.value", 2, **dims)
            + "</tr>"
        )
    chart = grouped_bars(
        "attribution",
        f"Conversions credited to each channel by every model, {period}",
        channels,
        by_model,
        "conversions credited",
    )
    return (
        "<section><h2>Attribution by channel and model</h2>"
        + chart
        + table(["Model", "Channel", "Conversions", "Value"], rows, "attribution-numbers")
        + "</section>"
    )


def paths_panel(board: Dashboard) -> str:
    period = board.period.label
    bars = [(r["path"], float(r["conversions"])) for r in board.paths]
    rows = [
        f"<tr><td>{escape(r['path'])}</td>"
        + cell(r["conversions"], "paths.conversions", 0, path=r["path"])
        + cell(r["null_paths"], "paths.null_paths", 0, path=r["path"])
        + cell(100 * (r["conversion_rate"] or 0), "paths.conversion_rate_pct", 1, path=r["path"])
        + cell(r["value"], "paths.value", 2, path=r["path"])
        + "</tr>"
        for r in board.paths
    ]
    edges = [(r["from_channel"], r["to_channel"], int(r["transitions"])) for r in board.transitions]
    return (
        "<section><h2>Conversion paths: the chain of touches</h2>"
        + bar_chart(
            "paths",
            f"Top {len(bars)} converting paths (channels in order of touch), {period}",
            bars,
            "conversions",
            digits=0,
        )
        + table(
            ["Path", "Conversions", "Null paths", "Conversion rate %", "Value"],
            rows,
            "paths-numbers",
        )
        + flow_diagram(
            "transitions",
            f"Channel → next channel in journeys, (start) to (conversion) or (null); "
            f"the {len(edges)} most frequent transitions, {period}",
            edges,
            "transitions",
        )
        + "</section>"
    )


def cohorts_panel(board: Dashboard) -> str:
    typical = board.typical_value
    reference = ("typical new customer", float(typical)) if typical is not None else None
    parts = ["<section><h2>New customers: predicted 365-day value</h2>"]
    for name, rows_, what in (
        ("cohort-channel", board.cohorts_by_channel, "acquisition channel"),
        ("cohort-category", board.cohorts_by_category, "first category"),
    ):
        parts.append(
            bar_chart(
                name,
                f"Average predicted value over the next 365 days of customers acquired in "
                f"the period's months, by {what}, against the typical new customer "
                f"(currency units), {board.period.label}",
                [(r["name"] or "(unknown)", float(r["expected_value"] or 0)) for r in rows_],
                "predicted value, 365 days",
                reference=reference,
                digits=2,
            )
        )
        parts.append(
            table(
                [what.capitalize(), "Customers", "Predicted value", "First order"],
                [
                    f"<tr><td>{escape(r['name'] or '(unknown)')}</td>"
                    + cell(r["customers"], "cohorts.customers", 0, dimension=what, name=r["name"])
                    + cell(r["expected_value"], "cohorts.expected_value", 2, name=r["name"])
                    + cell(r["first_order_value"], "cohorts.first_order_value", 2, name=r["name"])
                    + "</tr>"
                    for r in rows_
                ],
                f"{name}-numbers",
            )
        )
    return "".join(parts) + "</section>"


def responsiveness_panel(board: Dashboard) -> str:
    totals: dict[str, dict[str, float]] = {}
    stop_by_preferred: dict[str, float] = {}
    rows = []
    for r in board.responsiveness:
        totals.setdefault(r["recommendation"], {})
        totals[r["recommendation"]][r["channel"]] = (
            totals[r["recommendation"]].get(r["channel"], 0) + r["customers"]
        )
        if r["channel"] == "email" and r["recommendation"] in ("suppress", "reduce"):
            key = f"{r['recommendation']} email, prefers {r['preferred_channel']}"
            stop_by_preferred[key] = stop_by_preferred.get(key, 0) + r["customers"]
        rows.append(
            f"<tr><td>{escape(r['channel'])}</td><td>{escape(r['recommendation'])}</td>"
            f"<td>{escape(r['preferred_channel'])}</td>"
            + cell(
                r["customers"],
                "responsiveness.customers",
                0,
                channel=r["channel"],
                recommendation=r["recommendation"],
                preferred=r["preferred_channel"],
            )
            + "</tr>"
        )
    channels = sorted({r["channel"] for r in board.responsiveness})
    ordered = {k: totals[k] for k in ("keep", "reduce", "suppress") if k in totals}
    return (
        "<section><h2>Channel responsiveness</h2>"
        + grouped_bars(
            "responsiveness",
            "Customers per messaging channel and recommendation (keep, reduce, suppress), "
            "from each customer's responses so far",
            channels,
            ordered,
            "customers",
            digits=0,
        )
        + bar_chart(
            "stop-email",
            "Customers to stop or reduce emailing, by the channel they respond to best",
            sorted(stop_by_preferred.items(), key=lambda kv: (-kv[1], kv[0])),
            "customers",
            digits=0,
            empty="No customer to stop emailing yet.",
        )
        + table(["Channel", "Recommendation", "Prefers", "Customers"], rows, "resp-numbers")
        + "</section>"
    )


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def activation_panel(board: Dashboard) -> str:
    """Audiences, channel decisions, curated messages and the product feed, now."""
    decisions: dict[str, dict[str, float]] = {}
    rows = []
    for r in board.channel_decisions:
        decisions.setdefault(r["decision"], {})[r["channel"]] = float(r["customers"])
        rows.append(
            f"<tr><td>channel decision</td><td>{escape(r['channel'])}: {escape(r['decision'])}"
            "</td>"
            + cell(
                r["customers"],
                "activation.decisions",
                0,
                channel=r["channel"],
                decision=r["decision"],
            )
            + "</tr>"
        )
    for r in board.audiences:
        rows.append(
            f"<tr><td>audience</td><td>{escape(r['audience'])}</td>"
            + cell(r["members"], "activation.members", 0, audience=r["audience"])
            + "</tr>"
        )
    days = [
        f"<tr><td>{r['day']}</td><td>{escape(r['audience'])}</td>"
        + cell(r["members"], "activation.members_daily", 0, audience=r["audience"], day=r["day"])
        + cell(r["entered"], "activation.entered", 0, audience=r["audience"], day=r["day"])
        + cell(r["exited"], "activation.exited", 0, audience=r["audience"], day=r["day"])
        + "</tr>"
        for r in board.audience_days
    ]
    customers = sum(r["customers"] for r in board.feed)
    spread = sum(r["categories"] * r["customers"] for r in board.feed) / max(1, customers)
    return (
        "<section><h2>Acting on the customer</h2>"
        + bar_chart(
            "audiences",
            "Members of each audience now (customers)",
            [(r["audience"], float(r["members"])) for r in board.audiences],
            "customers",
            digits=0,
            empty="No audience has members yet.",
        )
        + grouped_bars(
            "channel-decisions",
            "Customers per channel and decision now (suppress: stop sending there)",
            sorted({r["channel"] for r in board.channel_decisions}),
            {k: decisions[k] for k in ("keep", "reduce", "suppress") if k in decisions},
            "customers",
            digits=0,
        )
        + bar_chart(
            "message-variants",
            "Share of each audience's message decisions per variant (Thompson sampling)",
            [
                (f"{r['audience']}: {r['variant']}", float(r["share"]) * 100)
                for r in board.variant_share
            ],
            "% of the audience's decisions",
            digits=1,
            empty="No message requests decided yet.",
        )
        + bar_chart(
            "feed-categories",
            f"Customers by categories in their latest product feed ({number(customers, 0)} "
            f"customers, {number(spread, 2)} categories per list on average)",
            [
                (plural(r["categories"], "category", "categories"), float(r["customers"]))
                for r in board.feed
            ],
            "customers",
            digits=0,
            empty="No product feed yet.",
        )
        + table(["What", "Which", "Customers"], rows, "activation-numbers")
        + table(
            ["Day", "Audience", "Members at day end", "Entered", "Exited"],
            days,
            "audience-days",
            "audience size by day",
        )
        + "</section>"
    )


def health_panel(board: Dashboard) -> str:
    fresh_rows = [
        f"<tr><td>{escape(r['name'])}</td>"
        + cell(r["rows"], "health.rows", 0, table=r["name"])
        + cell(r["seconds_since_last_write"], "health.age_s", 1, table=r["name"])
        + "</tr>"
        for r in board.freshness
    ]
    ingest = [(r["bucket_start"], float(r["per_minute"])) for r in board.ingest]
    return (
        "<section><h2>Pipeline health</h2>"
        + line_chart(
            "ingest",
            "Touchpoints written per minute (10-second buckets), the last hour of ingestion (UTC)",
            ingest,
            "touchpoints",
        )
        + bar_chart(
            "freshness",
            "Seconds since each table was last written (now)",
            [
                (r["name"], float(r["seconds_since_last_write"] or 0))
                for r in board.freshness
                if r["last_write"] is not None
            ],
            "seconds",
        )
        + bar_chart(
            "dead-letters",
            "Dead letters by reason, all time",
            [(r["reason"], float(r["dead_letters"])) for r in board.dead_letters],
            "dead letters",
            digits=0,
            empty="No dead letters.",
        )
        + table(["Table", "Rows", "Seconds since last write"], fresh_rows, "health-numbers")
        + "</section>"
    )


def render(board: Dashboard, updated: str, refresh_s: int = 10) -> str:
    """The whole page for ``board``."""
    options = "".join(
        f'<option value="{p}"{" selected" if p == board.period.name else ""}>'
        f"{'All time' if p == 'all' else 'Last ' + p.removesuffix('d') + ' days'}</option>"
        for p in PERIODS
    )
    if board.period.end is None:
        body = (
            '<section><h2>No data yet</h2><p class="note">The sink has not written any '
            "attributed conversion yet. Start the pipeline (<code>journeybus up</code> or "
            "<code>journeybus demo</code>); this page refreshes itself.</p></section>"
            + health_panel(board)
        )
    else:
        body = (
            attribution_panel(board)
            + paths_panel(board)
            + cohorts_panel(board)
            + responsiveness_panel(board)
            + activation_panel(board)
            + health_panel(board)
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<title>journeybus dashboard</title><link rel="icon" href="data:,">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body><header><h1>journeybus</h1>"
        f'<span id="period-label">{escape(board.period.label)}</span>'
        f'<span id="updated" class="note">updated {escape(updated)}</span>'
        '<form method="get"><label>Period <select name="period" id="period" '
        f'onchange="this.form.submit()">{options}</select></label></form></header>'
        f"<main>{body}</main><script>{SCRIPT % refresh_s}</script></body></html>"
    )
