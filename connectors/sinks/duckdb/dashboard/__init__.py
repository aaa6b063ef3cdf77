"""``journeybus dashboard``: a web page over the DuckDB sink's views (see server.py)."""
