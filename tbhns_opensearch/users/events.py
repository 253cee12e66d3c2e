"""User events: who did what to which product when, read from CSV or JSONL histories."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.textfiles import csv_rows, path_problem, text_file

USER_SOURCES = ("real", "simulated")
HISTORY_COLUMNS = ("user_id", "product_id", "event", "timestamp")


@dataclass(frozen=True)
class UserEvent:
    """One interaction of a user with a product.

    Args:
        user_id: The user.
        product_id: The product (its id in the catalog and the product index).
        event: Event type, a key of `PersonalizationConfig.event_weights` (purchase, add_to_cart, click).
        timestamp: When, as a number (epoch seconds, or an order number as a time proxy).
        source: "real" (a dataset) or "simulated" (`users.sources.simulate_users`); never mixed in a report.
    """

    user_id: str
    product_id: str
    event: str
    timestamp: float
    source: str = "real"

    def __post_init__(self) -> None:
        if self.source not in USER_SOURCES:
            raise PersonalizationError(f"event source {self.source!r} is unknown; use one of {', '.join(USER_SOURCES)}")
        if not self.user_id or not self.product_id:
            raise PersonalizationError(f"event {self!r} needs a user_id and a product_id")
        if not math.isfinite(self.timestamp):
            raise PersonalizationError(
                f"event of user {self.user_id!r} has timestamp {self.timestamp!r}; "
                "give a finite number or an ISO 8601 date"
            )


def read_history(path: str | Path) -> list[UserEvent]:
    """Read user events from CSV or JSONL with columns user_id, product_id, event, timestamp (+ optional source).

    Timestamps are numbers (epoch seconds, order numbers) or ISO 8601 dates.

    Example:
        >>> read_history("history.csv")[0]  # doctest: +SKIP
        UserEvent(user_id='u1', product_id='p9', event='purchase', timestamp=1700000000.0, source='real')
    """
    path = Path(path)
    if problem := path_problem(path):
        raise PersonalizationError(f"history file {str(path)!r} {problem}; pass a CSV or JSONL of user events")
    if path.suffix.lower() == ".jsonl":
        records = _jsonl_records(path)
    elif path.suffix.lower() == ".csv":
        records = _csv_records(path)
    else:
        raise PersonalizationError(f"history file {path.name!r} must end in .csv or .jsonl")
    return [_event(record, path, line) for line, record in records]


def _jsonl_records(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    number = 0
    with path.open(encoding="utf-8") as lines, text_file(path, PersonalizationError, lambda: number):
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PersonalizationError(
                        f"{path}:{number}: not a JSON object ({exc.msg}); fix or drop the line"
                    ) from exc
                except RecursionError as exc:
                    raise PersonalizationError(f"{path}:{number}: JSON nested too deep; fix or drop the line") from exc


def _csv_records(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    fix = f"a history has {', '.join(HISTORY_COLUMNS)}"
    for line, row in csv_rows(path, PersonalizationError, HISTORY_COLUMNS, fix):
        yield line, dict(row)


def _event(record: object, path: Path, line: int) -> UserEvent:
    if not isinstance(record, dict) or any(record.get(column) in (None, "") for column in HISTORY_COLUMNS):
        raise PersonalizationError(f"{path}:{line}: needs non-empty {', '.join(HISTORY_COLUMNS)}, got {record!r}")
    return UserEvent(
        user_id=str(record["user_id"]).strip(),
        product_id=str(record["product_id"]).strip(),
        event=str(record["event"]).strip().lower(),
        timestamp=_timestamp(record["timestamp"], path, line),
        source=str(record.get("source") or "real"),
    )


def _timestamp(value: object, path: Path, line: int) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    else:
        if not math.isfinite(number):
            raise PersonalizationError(
                f"{path}:{line}: timestamp {value!r} is not a finite number; "
                "give epoch seconds, an order number or an ISO 8601 date"
            )
        return number
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise PersonalizationError(
            f"{path}:{line}: timestamp {value!r} is neither a number nor an ISO 8601 date"
        ) from exc
