"""Benchmark BM25 against semantic search: TREC runs -> metrics -> significance -> report.

Modules, in the order the data moves: `runs` (TREC run and qrels files), `metrics` (ranx evaluation),
`significance` (paired tests, multiple-comparison correction), `breakdown` (per-group means),
`latency` (percentiles, QPS), `report` (report.json, summary.md, plots).
"""
