"""Instacart order sequences: every order of a user from their first, and the whole-last-order protocol.

The file (`order_lines.csv`, Instacart's `orders.csv` joined with `order_products__prior.csv`) has one row per
product of an order: `order_id, user_id, order_number, order_dow, order_hour_of_day, days_since_prior_order,
product_id, add_to_cart_order, reordered`. It has no product names: lines are joined with a catalog (Instacart's
`products.csv` through `read_dataset("instacart", ...)`), and lines of products the catalog lacks are dropped
and counted (`OrderSequences.lines_dropped`), so a report can say how many.

The protocol (HEM, Ai et al. 2017; ZAM, Ai et al. 2019; TEM, Bi et al. 2020), for stores without logged queries:

- per user, the held-out target is the user's whole LAST order (the highest `order_number` in the file);
- the history is every earlier order, never a line of the target order, each purchase with its recency: the
  number of orders before the target (1 = the order just before it) and the days before the target (the sum
  of `days_since_prior_order` of the later orders; Instacart caps each gap at 30 days);
- a query is the aisle (form "aisle") or `department > aisle` (form "path") of a product in the target order;
  its relevant products are that order's products in that aisle (`sequence_queries`). These queries are
  derived from categories, not typed by shoppers: label them so in every report;
- users are split into train / validation / test by a seeded hash of the user id (`user_split`), so a user's
  split does not depend on which other users are in the file; `select_users(..., "all")` keeps everyone;
- `cut_history` keeps the last K orders of a history (K = 0 is a newcomer), to measure short histories.

Instacart's terms are non-commercial: read the files from the shared data folder; never commit them or
anything derived from them. Tests use small hand-made files in this layout.

Example:
    >>> from tbhns_opensearch.catalog.adapters import read_dataset
    >>> catalog = read_dataset("instacart", "../shared/data/instacart")  # doctest: +SKIP
    >>> data = read_order_sequences("../shared/data/instacart-sequences/order_lines.csv", catalog)  # doctest: +SKIP
    >>> queries = sequence_queries(select_users(data.users, "validation"), catalog)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.config import is_count
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.textfiles import csv_rows, path_problem
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.sources import HeldOutUser, UserQuery, aisle_queries

ORDER_LINE_COLUMNS = (
    "order_id",
    "user_id",
    "order_number",
    "order_dow",
    "order_hour_of_day",
    "days_since_prior_order",
    "product_id",
    "add_to_cart_order",
    "reordered",
)
REQUIRED_COLUMNS = ("order_id", "user_id", "order_number", "days_since_prior_order", "product_id", "add_to_cart_order")
SPLITS = ("train", "validation", "test", "all")
QUERY_FORMS: dict[str, Callable[[tuple[str, ...]], str]] = {
    "aisle": lambda path: path[-1],
    "path": lambda path: " > ".join(path),
}


@dataclass(frozen=True)
class PastPurchase:
    """One product of one history order, with its recency relative to the target order.

    Args:
        product_id: The product.
        orders_before: The target's order_number minus its order's: 1 for the order just before the target.
        days_before: Days from its order to the target order; None where a gap is unknown.
    """

    product_id: str
    orders_before: int
    days_before: float | None


@dataclass(frozen=True)
class SequenceUser:
    """A user split at their last order.

    Args:
        user_id: The user.
        history: Purchases of every earlier order, oldest order first, in add-to-cart order within an order.
        target_order: The `order_id` of the held-out last order.
        targets: Products of the last order (add-to-cart order, no repeats) that the catalog names.
        history_orders: Orders of the file before the target, whether or not the catalog names their products
            (at most K after `cut_history(user, K)`).
    """

    user_id: str
    history: tuple[PastPurchase, ...]
    target_order: str
    targets: tuple[str, ...]
    history_orders: int


@dataclass(frozen=True)
class OrderSequences:
    """What `read_order_sequences` read: the users (sorted by id) and how many lines it kept and dropped.

    Args:
        users: One `SequenceUser` per user in the file.
        lines_read: Data lines in the file.
        lines_dropped: Lines whose product the catalog does not name (left out of histories and targets).
    """

    users: tuple[SequenceUser, ...]
    lines_read: int
    lines_dropped: int


@dataclass(frozen=True)
class _Line:
    order_id: str
    order_number: int
    days_since_prior: float | None
    product_id: str
    add_to_cart_order: int


def read_order_sequences(path: str | Path, products: Iterable[Product]) -> OrderSequences:
    """Read an order-lines file and split each user at their last order (see the module docstring).

    Args:
        path: CSV in the layout of `ORDER_LINE_COLUMNS`; the columns of `REQUIRED_COLUMNS` must be there,
            others are ignored.
        products: The catalog that names the products; lines of other products are dropped and counted.

    Example:
        >>> soda = Product("196", "Soda", taxonomy_path=("beverages", "soft drinks"))
        >>> data = read_order_sequences("order_lines.csv", [soda])  # doctest: +SKIP
        >>> data.lines_dropped, data.users[0].targets  # doctest: +SKIP
        (3, ('196',))
    """
    path = Path(path)
    named = {product.id for product in products}
    by_user: dict[str, list[_Line]] = defaultdict(list)
    lines_read = lines_dropped = 0
    orders = _OrderCheck(path)
    for line, row in _order_rows(path):
        lines_read += 1
        parsed = _parse_line(path, line, row)
        if parsed.product_id not in named:
            lines_dropped += 1
        orders.check(line, row["user_id"], parsed)
        by_user[row["user_id"]].append(parsed)
    users = tuple(_sequence_user(user_id, lines, named) for user_id, lines in sorted(by_user.items()))
    return OrderSequences(users, lines_read, lines_dropped)


def named_products(users: Sequence[SequenceUser], catalog: Iterable[Product]) -> list[Product]:
    """The products of `catalog` that the users' histories or last orders name, in catalog order.

    Example:
        >>> soda, tea = Product("1", "Soda"), Product("2", "Tea")
        >>> [p.id for p in named_products([SequenceUser("u", (), "o1", ("2",), 0)], [soda, tea])]
        ['2']
    """
    named = {p.product_id for user in users for p in user.history} | {pid for user in users for pid in user.targets}
    return [p for p in catalog if p.id in named]


def cut_history(user: SequenceUser, last_orders: int) -> SequenceUser:
    """The same user with only the last `last_orders` orders of their history (0: no history at all).

    Example:
        >>> history = (PastPurchase("a", 3, 20.0), PastPurchase("b", 2, 9.0), PastPurchase("c", 1, 4.0))
        >>> user = SequenceUser("u", history, "o4", ("d",), 3)
        >>> [p.product_id for p in cut_history(user, 2).history], cut_history(user, 2).history_orders
        (['b', 'c'], 2)
        >>> cut_history(user, 0).history
        ()
    """
    if not is_count(last_orders):
        raise PersonalizationError(f"last_orders must be an integer >= 0 (0 keeps no history), got {last_orders!r}")
    kept = tuple(p for p in user.history if p.orders_before <= last_orders)
    return replace(user, history=kept, history_orders=min(user.history_orders, last_orders))


def user_split(user_id: str, *, seed: int = 0, validation: float = 0.2, test: float = 0.2) -> str:
    """ "train", "validation" or "test" for a user, by a seeded hash of the id alone (stable whatever other
    users are present); the shares are expectations, not exact counts.

    Example:
        >>> splits = [user_split(str(i)) for i in range(1000)]
        >>> 500 < splits.count("train") < 700, 130 < splits.count("test") < 270
        (True, True)
    """
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise PersonalizationError(
            f"validation={validation} and test={test} must be fractions in [0, 1) that "
            "leave users for training (sum below 1); lower them"
        )
    draw = keyed_rng(seed, "sequence-split", user_id).random()
    return "test" if draw < test else "validation" if draw < test + validation else "train"


def select_users(
    users: Sequence[SequenceUser], split: str, *, seed: int = 0, validation: float = 0.2, test: float = 0.2
) -> list[SequenceUser]:
    """The users of one split ("train", "validation", "test") or every user ("all"), in their given order.

    Example:
        >>> users = [SequenceUser(str(i), (), f"o{i}", ("p",), 0) for i in range(50)]
        >>> sum(len(select_users(users, name)) for name in ("train", "validation", "test"))
        50
    """
    if split not in SPLITS:
        raise PersonalizationError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}")
    if split == "all":
        return list(users)
    return [u for u in users if user_split(u.user_id, seed=seed, validation=validation, test=test) == split]


def held_out_user(user: SequenceUser) -> HeldOutUser:
    """The user as a `HeldOutUser` (purchase events timed by order, so the target order is at 0 and the
    order before it at -1), for the profile builder and `aisle_queries` of `users.sources`.

    Example:
        >>> history = (PastPurchase("a", 2, None), PastPurchase("b", 1, 3.0))
        >>> held = held_out_user(SequenceUser("u", history, "o3", ("c",), 2))
        >>> [(e.product_id, e.timestamp) for e in held.history], held.targets
        ([('a', -2.0), ('b', -1.0)], ('c',))
    """
    history = tuple(UserEvent(user.user_id, p.product_id, "purchase", float(-p.orders_before)) for p in user.history)
    return HeldOutUser(user.user_id, history, user.targets)


def sequence_queries(
    users: Sequence[SequenceUser], products: Iterable[Product], form: str = "aisle"
) -> list[UserQuery]:
    """One query per (user, aisle of a product of the target order): the aisle (`form="aisle"`) or
    `department > aisle` (`form="path"`) as text, relevant = the target order's products in that aisle.
    Targets without a taxonomy path are left out. Derived from categories, not typed by shoppers.

    Example:
        >>> catalog = [Product("a", "Oat Milk", taxonomy_path=("dairy eggs", "milk")),
        ...            Product("b", "Skim Milk", taxonomy_path=("dairy eggs", "milk")),
        ...            Product("c", "Green Tea", taxonomy_path=("beverages", "tea"))]
        >>> user = SequenceUser("7", (), "o9", ("a", "b", "c"), 0)
        >>> [(q.text, sorted(q.targets)) for q in sequence_queries([user], catalog, form="path")]
        [('beverages > tea', ['c']), ('dairy eggs > milk', ['a', 'b'])]
    """
    if form not in QUERY_FORMS:
        raise PersonalizationError(f"query form {form!r} is unknown; use one of {', '.join(QUERY_FORMS)}")
    text_of = {product.id: QUERY_FORMS[form](product.taxonomy_path) for product in products if product.taxonomy_path}
    return aisle_queries([held_out_user(user) for user in users], text_of)


def _order_rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """(file line, row) for each data line; the header is line 1."""
    if problem := path_problem(path):
        raise PersonalizationError(
            f"order-lines file {str(path)!r} {problem}; pass a CSV with the columns {', '.join(ORDER_LINE_COLUMNS)}"
        )
    yield from csv_rows(
        path, PersonalizationError, REQUIRED_COLUMNS, f"write the header {','.join(ORDER_LINE_COLUMNS)}"
    )


def _parse_line(path: Path, line: int, row: dict[str, str]) -> _Line:
    for name in ("order_id", "user_id", "product_id"):
        if not (row.get(name) or "").strip():
            raise PersonalizationError(f"{path}:{line}: field {name} is empty; give every line its {name}")
        row[name] = row[name].strip()
    order_number = _whole(path, line, row, "order_number", minimum=1)
    gap = (row.get("days_since_prior_order") or "").strip()
    days: float | None = None
    if gap:
        try:
            days = float(gap)
        except ValueError:
            days = math.nan
        if not (math.isfinite(days) and days >= 0):
            raise PersonalizationError(
                f"{path}:{line}: field days_since_prior_order is {gap!r}; give a number of "
                "days >= 0, or leave it empty (the first order, or an unknown gap)"
            )
    return _Line(
        row["order_id"], order_number, days, row["product_id"], _whole(path, line, row, "add_to_cart_order", minimum=1)
    )


def _whole(path: Path, line: int, row: dict[str, str], name: str, minimum: int) -> int:
    """An integer field; "3.0" (as pandas writes integers next to gaps) reads as 3."""
    text = (row.get(name) or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and value >= minimum):
        raise PersonalizationError(f"{path}:{line}: field {name} is {text!r}; give a whole number >= {minimum}")
    return int(value)


class _OrderCheck:
    """One order id belongs to one (user, order number), and a user's order number to one order id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.owner: dict[str, tuple[str, int, int]] = {}  # order id -> (user, order number, first line)
        self.order_of: dict[tuple[str, int], str] = {}  # (user, order number) -> order id

    def check(self, line: int, user_id: str, parsed: _Line) -> None:
        known = self.owner.setdefault(parsed.order_id, (user_id, parsed.order_number, line))
        if known[:2] != (user_id, parsed.order_number):
            raise PersonalizationError(
                f"{self.path}:{line}: order {parsed.order_id!r} has user_id {user_id!r} and order_number "
                f"{parsed.order_number}, but line {known[2]} gives user_id {known[0]!r} and order_number {known[1]}; "
                "give every line of an order the same user_id and order_number"
            )
        order_id = self.order_of.setdefault((user_id, parsed.order_number), parsed.order_id)
        if order_id != parsed.order_id:
            raise PersonalizationError(
                f"{self.path}:{line}: field order_number is {parsed.order_number} for order {parsed.order_id!r} of "
                f"user {user_id!r}, which order {order_id!r} already has; give each order of a user its own number"
            )


def _sequence_user(user_id: str, lines: list[_Line], named: set[str]) -> SequenceUser:
    last = max(line.order_number for line in lines)
    gap_of = {line.order_number: line.days_since_prior for line in lines}
    days_before: dict[int, float | None] = {last: 0.0}
    for number in range(last - 1, 0, -1):  # days from order `number` to the target: the later orders' gaps
        later, gap = days_before.get(number + 1), gap_of.get(number + 1)
        days_before[number] = None if later is None or gap is None else later + gap
    ordered = sorted(lines, key=lambda line: (line.order_number, line.add_to_cart_order))
    history = tuple(
        PastPurchase(line.product_id, last - line.order_number, days_before[line.order_number])
        for line in ordered
        if line.order_number < last and line.product_id in named
    )
    targets = tuple(
        dict.fromkeys(line.product_id for line in ordered if line.order_number == last and line.product_id in named)
    )
    target_order = next(line.order_id for line in lines if line.order_number == last)
    return SequenceUser(user_id, history, target_order, targets, len({line.order_number for line in lines}) - 1)
