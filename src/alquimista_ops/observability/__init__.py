"""Observability: Prometheus metrics of the HTTP server (``GET /metrics``) and the
figures read from the database at scrape time (commands, queue backlog, aggregation)."""
