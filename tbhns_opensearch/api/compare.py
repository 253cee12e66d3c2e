"""The comparison page's backend: one query through up to four (mode, encoder) columns, side by side.

A *system* is a product alias with the encoder it was built with and its users index (`ComparedSystem`); the
server searches one or more of them. A *column* is a mode on a system ("hybrid:trained"). With judgments
loaded, each hit carries its grade (None: unjudged) and each column its NDCG@10 for the query (linear gain,
`eval.metrics`, as the benchmark computes it); `moved_by` says how many ranks a hit rose (> 0) or fell
(< 0) against the first column, None when the first column did not return it.

Example:
    >>> parse_column("hybrid:trained")
    ColumnSpec(mode='hybrid', system='trained')
    >>> ComparedSystem.parse("trained=products-trained,runs/icecat-taxonomy")
    ComparedSystem(name='trained', alias='products-trained', encoder='runs/icecat-taxonomy', users_index='users')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.eval.metrics import MetricConfig, evaluate
from tbhns_opensearch.eval.queries import LabelledQuery, query_key
from tbhns_opensearch.query import MODES, SearchClient, SearchResponse
from tbhns_opensearch.query.builders import Filters

MAX_COLUMNS = 4
NDCG = MetricConfig(recall_ks=(10,), ndcg_k=10, threshold=1)
SYSTEM_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

Judgments = Mapping[str, Mapping[str, int]]
"""query_key(query) -> {product id: grade}."""


@dataclass(frozen=True)
class ComparedSystem:
    """A product alias, the encoder it was built with and the users index holding user vectors of that encoder.

    Args:
        name: What the page calls it ("base", "trained"): letters, digits, "-", "_" and ".".
        alias: Product alias.
        encoder: Encoder name or exported directory.
        users_index: Users index written with this encoder's product vectors.
    """

    name: str
    alias: str
    encoder: str
    users_index: str = "users"

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= SYSTEM_NAME_CHARS:
            raise SearchError(f"system name {self.name!r} must be letters, digits, '-', '_' or '.'")

    @classmethod
    def parse(cls, spec: str) -> ComparedSystem:
        """`NAME=ALIAS,ENCODER[,USERS_INDEX]`, the form `tbhns serve --system` takes."""
        name, _, rest = spec.partition("=")
        parts = [part.strip() for part in rest.split(",")]
        if not name.strip() or len(parts) not in (2, 3) or not all(parts):
            raise SearchError(
                f"--system {spec!r} must be NAME=ALIAS,ENCODER[,USERS_INDEX], e.g. "
                "trained=products-trained,runs/compare/icecat-taxonomy,users-trained"
            )
        return cls(name.strip(), *parts)


class ColumnSpec(BaseModel):
    """One column: a search mode on a named system."""

    mode: str
    system: str


class ComparedHit(BaseModel):
    """A hit as the page shows it."""

    id: str
    title: str
    category_path: list[str]
    brand: str
    price: float | None
    score: float
    grade: int | None  # None: unjudged (or no judgments loaded)
    moved_by: int | None  # ranks gained against the first column; None: not in the first column


class ColumnResult(BaseModel):
    """One column's hits and how they were found."""

    mode: str
    system: str
    encoder: str
    used_mode: str
    path: str | None
    fallback_reason: str | None
    took_ms: float
    ndcg_at_10: float | None  # None: no judgments for this query
    hits: list[ComparedHit]


class Comparison(BaseModel):
    """Every column for one query."""

    query: str
    user_id: str | None
    judged: bool  # the loaded judgments grade this query
    columns: list[ColumnResult]


def parse_column(spec: str) -> ColumnSpec:
    """`MODE:SYSTEM` (the system may be left out when the server has one: `MODE`)."""
    mode, _, system = spec.partition(":")
    if mode not in MODES:
        raise SearchError(f"column {spec!r}: mode {mode!r} is unknown; valid modes are {', '.join(MODES)}")
    return ColumnSpec(mode=mode, system=system)


def judgments_by_query(labelled: Iterable[LabelledQuery]) -> dict[str, dict[str, int]]:
    """Group labelled queries by `query_key`, keeping each product's highest grade.

    Example:
        >>> judgments_by_query([LabelledQuery("Kite", "p1", 2), LabelledQuery("kite ", "p1", 1)])
        {'kite': {'p1': 2}}
    """
    grouped: dict[str, dict[str, int]] = {}
    for judgment in labelled:
        grades = grouped.setdefault(query_key(judgment.query), {})
        grades[judgment.product_id] = max(grades.get(judgment.product_id, 0), judgment.grade)
    return grouped


def compare(
    query: str,
    columns: Sequence[ColumnSpec],
    clients: Mapping[str, SearchClient],
    *,
    user_id: str | None = None,
    filters: Filters | None = None,
    k: int = 10,
    judgments: Judgments | None = None,
) -> Comparison:
    """Run `query` through each column (`clients`: system name -> its `SearchClient`) and grade the hits.

    Example:
        >>> compare("kite", [parse_column("bm25:base"), parse_column("hybrid:trained")], clients)  # doctest: +SKIP
    """
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise SearchError(f"give 1 to {MAX_COLUMNS} columns, got {len(columns)}")
    default = next(iter(clients))
    grades = (judgments or {}).get(query_key(query))
    results: list[ColumnResult] = []
    first_ranks: dict[str, int] = {}
    for position, column in enumerate(columns):
        system = column.system or default
        if system not in clients:
            raise SearchError(
                f"column {column.mode}:{system}: no system {system!r}; this server has {', '.join(clients)}"
            )
        client = clients[system]
        response = client.search(query, user_id=user_id, mode=column.mode, k=k, filters=filters)
        ranks = {hit.id: rank for rank, hit in enumerate(response.hits)}
        if position == 0:
            first_ranks = ranks
        results.append(_column(column.mode, system, client, response, grades, ranks, first_ranks, position == 0))
    return Comparison(query=query, user_id=user_id, judged=grades is not None, columns=results)


def _column(
    mode: str,
    system: str,
    client: SearchClient,
    response: SearchResponse,
    grades: Mapping[str, int] | None,
    ranks: Mapping[str, int],
    first_ranks: Mapping[str, int],
    first: bool,
) -> ColumnResult:
    hits = [
        ComparedHit(
            id=hit.id,
            title=hit.title,
            category_path=list(hit.category_path),
            brand=hit.brand,
            price=hit.price,
            score=hit.score,
            grade=None if grades is None else grades.get(hit.id),
            moved_by=None if first or hit.id not in first_ranks else first_ranks[hit.id] - ranks[hit.id],
        )
        for hit in response.hits
    ]
    return ColumnResult(
        mode=mode,
        system=system,
        encoder=client.query_encoder.name,
        used_mode=response.mode,
        path=response.path,
        fallback_reason=response.fallback_reason,
        took_ms=round(response.took_ms, 1),
        ndcg_at_10=_ndcg_at_10(ranks, grades),
        hits=hits,
    )


def _ndcg_at_10(ranks: Mapping[str, int], grades: Mapping[str, int] | None) -> float | None:
    """NDCG@10 of one ranking against one query's grades (None without a relevant grade)."""
    if not grades or not any(grade >= NDCG.threshold for grade in grades.values()):
        return None
    run = {"q": {product_id: float(len(ranks) - rank) for product_id, rank in ranks.items()}}
    return round(evaluate(run, {"q": dict(grades)}, NDCG).per_query["ndcg@10"]["q"], 4)
