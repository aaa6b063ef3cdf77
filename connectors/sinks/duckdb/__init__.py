"""The DuckDB sink: derived topics → tables analysts and dashboards query with SQL."""
