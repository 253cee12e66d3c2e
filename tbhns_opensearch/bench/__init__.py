"""Benchmark BM25 against semantic search through OpenSearch, evaluated with `tbhns_opensearch.eval`.

Modules, in the order the data moves: `runner` (ingest, run every system), `latency` and `throughput`
(percentiles, QPS, ingest rate), `breakdown` (per-group means), `plots` and `report` (report.json, summary.md).
"""
