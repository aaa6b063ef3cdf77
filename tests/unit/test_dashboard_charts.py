"""The dashboard's SVG charts and periods (pure functions)."""

import datetime as dt
import re

from connectors.sinks.duckdb.dashboard.charts import (
    bar_chart,
    flow_diagram,
    grouped_bars,
    line_chart,
    number,
    short,
)
from connectors.sinks.duckdb.dashboard.data import Period


def points(markup: str) -> int:
    return int(re.search(r'data-points="(\d+)"', markup).group(1))


def test_an_empty_chart_says_so_instead_of_drawing_axes():
    for markup in (
        bar_chart("b", "caption", [], "units"),
        grouped_bars("g", "caption", [], {}, "units"),
        line_chart("l", "caption", [], "units"),
        flow_diagram("f", "caption", [], "units"),
    ):
        assert points(markup) == 0
        assert "No data yet." in markup and "<svg" not in markup


def test_an_empty_bar_chart_can_say_why():
    markup = bar_chart("b", "caption", [], "units", empty="No dead letters.")
    assert "No dead letters." in markup and "No data yet." not in markup


def test_bars_are_proportional_and_labelled_with_their_values():
    markup = bar_chart("b", "Conversions, last 7 days", [("Email", 10.0), ("SMS", 5.0)], "conv")
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', markup)]
    assert widths[0] == 2 * widths[1]
    assert ">10.0<" in markup and ">5.0<" in markup
    assert "<figcaption>Conversions, last 7 days</figcaption>" in markup
    assert points(markup) == 2


def test_labels_and_captions_are_escaped():
    markup = bar_chart("b", "<b>caption</b>", [("<script>alert(1)</script>", 1.0)], "u")
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert "<b>" not in markup


def test_a_reference_line_is_drawn_and_labelled():
    markup = bar_chart("b", "c", [("A", 4.0)], "value", reference=("typical", 2.0), digits=2)
    assert "stroke-dasharray" in markup and "typical: 2.00" in markup


def test_grouped_bars_have_a_legend_entry_per_series_and_count_non_zero_points():
    markup = grouped_bars(
        "g",
        "c",
        ["Email", "SMS"],
        {"linear": {"Email": 1.5, "SMS": 0.0}, "markov": {"Email": 2}},
        "u",
    )
    assert ">linear<" in markup and ">markov<" in markup
    assert points(markup) == 2


def test_the_flow_diagram_draws_each_link_as_wide_as_its_count():
    markup = flow_diagram("f", "c", [("(start)", "Email", 30), ("Email", "(conversion)", 10)], "t")
    widths = [float(w) for w in re.findall(r'stroke-width="([\d.]+)"', markup)]
    assert widths[0] == 3 * widths[1]
    assert "(start) (30)" in markup and "(conversion) (10)" in markup


def test_a_line_chart_spans_its_time_range():
    t0 = dt.datetime(2026, 11, 22, 10, 0)
    markup = line_chart(
        "l", "c", [(t0, 60.0), (t0 + dt.timedelta(minutes=5), 120.0)], "touchpoints"
    )
    assert "10:00 UTC" in markup and "10:05 UTC" in markup and points(markup) == 2


def test_numbers_and_short_labels():
    assert number(1234.5678, 2) == "1,234.57"
    assert number(3, 0) == "3" and number(None) == "n/a"
    assert short("A > B", 30) == "A > B"
    long = " > ".join(["Organic Search"] * 5)
    assert len(short(long)) == 30 and short(long).endswith("Organic Search")


def test_periods():
    end = dt.date(2025, 10, 23)
    week = Period("7d", dt.date(2025, 10, 17), end)
    assert week.label == "the 7 days 2025-10-17 to 2025-10-23"
    assert week.where() == ("day BETWEEN ? AND ?", [dt.date(2025, 10, 17), end])
    assert Period("all", None, end).where() == ("TRUE", [])
    assert Period("all", None, None).label == "no data yet"
