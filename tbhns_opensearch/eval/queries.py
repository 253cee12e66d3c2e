"""Labelled queries: graded (query, product) judgments tagged "real" (a dataset) or "generated" (`querygen`),
grouped by `query_key` (lowercased, whitespace collapsed), so "LEGO  Duplo" and "lego duplo" are one query."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tbhns_opensearch.catalog.adapters import load_judgments
from tbhns_opensearch.catalog.judgments import Judgment
from tbhns_opensearch.config import is_count
from tbhns_opensearch.errors import EvaluationError
from tbhns_opensearch.textfiles import text_file

LABELLED_QUERY_SOURCES = ("real", "generated")  # who wrote the query: a dataset's shoppers, or `querygen`


@dataclass(frozen=True)
class LabelledQuery(Judgment):
    """A judgment that knows where it came from: "real" (a dataset) or "generated" (`querygen`).

    Args:
        query: The shopper's query text.
        product_id: The judged product.
        grade: 0 (irrelevant) or higher (more relevant); WANDS uses 0/1/2.
        source: "real" or "generated".

    Example:
        >>> LabelledQuery.from_judgment(Judgment("usb cable", "p1", 2))
        LabelledQuery(query='usb cable', product_id='p1', grade=2, source='real')
    """

    source: str = "real"

    def __post_init__(self) -> None:
        if self.source not in LABELLED_QUERY_SOURCES:
            raise EvaluationError(
                f"judgment source {self.source!r} is unknown; use one of {', '.join(LABELLED_QUERY_SOURCES)}"
            )
        if not query_key(self.query):
            raise EvaluationError(f"judgment for product {self.product_id!r} has an empty query; drop it")
        if not is_count(self.grade):
            raise EvaluationError(f"grade {self.grade!r} for query {self.query!r} must be an integer >= 0")

    @classmethod
    def from_judgment(cls, judgment: Judgment, source: str = "real") -> LabelledQuery:
        """Tag a judgment read from a catalog (`catalog.judgments`) with its source."""
        return cls(judgment.query, judgment.product_id, judgment.grade, source)


def query_key(query: str) -> str:
    """The grouping key of a query: lowercased, whitespace collapsed.

    Example:
        >>> query_key("  LEGO   Duplo ")
        'lego duplo'
    """
    return " ".join(query.lower().split())


def write_labelled_queries(path: str | Path, judgments: Iterable[LabelledQuery]) -> None:
    """Write labelled queries as JSONL, one object per line."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for judgment in judgments:
            handle.write(json.dumps(asdict(judgment), ensure_ascii=False) + "\n")


def read_labelled_queries(path: str | Path) -> list[LabelledQuery]:
    """Read labelled queries written by `write_labelled_queries`."""
    judgments: list[LabelledQuery] = []
    number = 0
    with Path(path).open(encoding="utf-8") as handle, text_file(path, EvaluationError, lambda: number):
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                judgments.append(LabelledQuery(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise EvaluationError(
                    f"{path}:{number} is not a labelled query ({exc}); "
                    "each line needs query, product_id, grade and source"
                ) from exc
    return judgments


def load_labelled_queries(
    queries: str,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    judgments: str | Path | None = None,
    source: str = "real",
) -> list[LabelledQuery]:
    """Labelled queries as training, the benchmark and the comparison page read them: `queries="judgments"`
    takes `dataset`'s own judgments (or the file `judgments` in that dataset's layout), tagged `source`;
    anything else is a labelled-queries JSONL path (`write_labelled_queries`).

    Example:
        >>> load_labelled_queries("judgments", "homedepot", judgments="held-back.csv")[0]  # doctest: +SKIP
        LabelledQuery(query='angle bracket', product_id='100001', grade=2, source='real')
    """
    if queries != "judgments":
        return read_labelled_queries(queries)
    if not dataset:
        raise EvaluationError(
            'queries="judgments" reads a dataset\'s judgments; name the dataset whose layout they have '
            "(icecat, wands, homedepot) or give a labelled-queries JSONL instead"
        )
    return [LabelledQuery.from_judgment(j, source) for j in load_judgments(dataset, data_dir, judgments or None)]
