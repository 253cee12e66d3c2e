"""Where user histories come from: real Instacart orders, or a seeded simulator for catalogs without users.

Real (`source="real"`): Instacart's `orders.csv` + `order_products__prior.csv` become purchase events, with
the order number as the time proxy (Instacart publishes no dates). `instacart_holdout` keeps, for each user,
the tail of their last order (by add-to-cart order) as targets and everything earlier as history. Read the
files from the shared data folder; never copy them (or anything derived from them) into the repository.

Simulated (`source="simulated"`): `simulate_users` draws users with latent preferences and samples their
events from those preferences, so a catalog with a taxonomy but no users can exercise personalization:

1. Each user prefers `preferred_categories` taxonomy nodes at `category_depth` (drawn among nodes holding
   at least `min_category_products` products) with Dirichlet(1) weights, and one attribute term
   ("brand=<brand>" or "<name>=<value>" of a string attribute) drawn from products in those nodes.
2. Each event picks, with probability `focus`, a preferred node by weight and a product in it (products
   carrying the preferred term weigh `term_boost` times more); otherwise a product uniformly from the catalog.
3. The event type is drawn from `event_mix`; timestamps advance by one `spacing_s` per event.

Everything is seeded by (seed, user index), so a user is the same whatever the number of users drawn.
Simulated users must stay apart from real ones in every report. (Latency and load tests need profiles that
only exist, not preferences: `bench.load_test_users` writes users of uniform random histories for them.)

Example:
    >>> from tbhns_opensearch.catalog.product import Product
    >>> products = [Product(id=f"p{i}", title=f"t{i}", taxonomy_path=("A", "B" if i % 2 else "C"))
    ...             for i in range(8)]
    >>> users = simulate_users(products, SimulationConfig(users=2, category_depth=2, min_category_products=1))
    >>> users[0].events[0].source
    'simulated'
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.seeding import keyed_rng
from tbhns_opensearch.textfiles import csv_rows
from tbhns_opensearch.users.events import UserEvent

INSTACART_FILES = ("orders.csv", "order_products__prior.csv")


@dataclass(frozen=True)
class HeldOutUser:
    """A real user split in time: `history` (oldest first) and the products held out of the last order."""

    user_id: str
    history: tuple[UserEvent, ...]
    targets: tuple[str, ...]


def read_instacart_events(directory: str | Path) -> list[UserEvent]:
    """Every prior-order line as a real purchase event; timestamp = the order's number for that user.

    Example:
        >>> read_instacart_events("../shared/data/instacart")[0].event  # doctest: +SKIP
        'purchase'
    """
    return [event for basket in _instacart_purchases(Path(directory)).values() for event in basket]


def instacart_holdout(directory: str | Path, holdout_fraction: float = 0.5) -> list[HeldOutUser]:
    """Per user: the last `holdout_fraction` of their last order (by add-to-cart order, at least one item) as
    targets, every earlier purchase as history. Users are sorted by id.

    Example:
        >>> users = instacart_holdout("../shared/data/instacart")  # doctest: +SKIP
        >>> len(users[0].history), users[0].targets  # doctest: +SKIP
        (4, ('21903', '47209'))
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise PersonalizationError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    held_out = []
    for user_id, events in sorted(_instacart_purchases(Path(directory)).items()):
        last_order = events[-1].timestamp
        last_basket = [event for event in events if event.timestamp == last_order]
        held = max(1, math.ceil(len(last_basket) * holdout_fraction))
        history = tuple(events[: len(events) - held])
        targets = tuple(dict.fromkeys(event.product_id for event in events[len(events) - held :]))
        held_out.append(HeldOutUser(user_id, history, targets))
    return held_out


@dataclass(frozen=True)
class UserQuery:
    """A query issued by a held-out user: its text, and the held-out products it should retrieve."""

    user_id: str
    text: str
    targets: frozenset[str]


def aisle_queries(users: Sequence[HeldOutUser], aisle_of: Mapping[str, str]) -> list[UserQuery]:
    """One query per (user, aisle of a held-out product), the aisle name as text; targets without an aisle
    are left out. Users keep their order; a user's queries are sorted by aisle.

    Example:
        >>> user = HeldOutUser("7", (), ("p1", "p2", "p3"))
        >>> [(q.text, sorted(q.targets)) for q in aisle_queries([user], {"p1": "tea", "p2": "tea", "p3": "milk"})]
        [('milk', ['p3']), ('tea', ['p1', 'p2'])]
    """
    queries = []
    for user in users:
        by_aisle: dict[str, set[str]] = defaultdict(set)
        for product_id in user.targets:
            if product_id in aisle_of:
                by_aisle[aisle_of[product_id]].add(product_id)
        queries += [UserQuery(user.user_id, aisle, frozenset(targets)) for aisle, targets in sorted(by_aisle.items())]
    return queries


def split_users(
    users: Sequence[HeldOutUser], validation_share: float, seed: int = 0
) -> tuple[list[HeldOutUser], list[HeldOutUser]]:
    """(validation, test) users by a seeded hash of the user id: stable whatever other users are present.

    Example:
        >>> users = [HeldOutUser(str(i), (), ("p",)) for i in range(100)]
        >>> validation, test = split_users(users, 0.3)
        >>> len(validation) + len(test), 15 < len(validation) < 45
        (100, True)
    """
    chosen = {user.user_id for user in users if keyed_rng(seed, "split", user.user_id).random() < validation_share}
    return [u for u in users if u.user_id in chosen], [u for u in users if u.user_id not in chosen]


def _instacart_purchases(directory: Path) -> dict[str, list[UserEvent]]:
    """User id -> purchase events sorted by (order number, add-to-cart order)."""
    missing = [name for name in INSTACART_FILES if not (directory / name).is_file()]
    if missing:
        raise PersonalizationError(f"{directory} lacks Instacart files {missing}; point it at the unpacked Kaggle set")
    orders = {
        row["order_id"]: (row["user_id"], int(row["order_number"]))
        for row in _rows(directory / "orders.csv", ("order_id", "user_id", "order_number"))
    }
    lines: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for row in _rows(directory / "order_products__prior.csv", ("order_id", "product_id", "add_to_cart_order")):
        if row["order_id"] in orders:  # the sample ships lines of some orders it does not list; skip them
            user_id, order_number = orders[row["order_id"]]
            lines[user_id].append((order_number, int(row["add_to_cart_order"]), row["product_id"]))
    return {
        user_id: [
            UserEvent(user_id, product_id, "purchase", float(order_number))
            for order_number, _, product_id in sorted(items)
        ]
        for user_id, items in lines.items()
    }


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    return [row for _, row in csv_rows(path, PersonalizationError, columns, "use the file as published by Instacart")]


@dataclass(frozen=True)
class SimulationConfig:
    """How simulated users are drawn (see the module docstring for the generative story).

    Args:
        users: Number of users.
        min_events: Fewest events per user (0 makes users with no history, to exercise the fallback).
        max_events: Most events per user.
        preferred_categories: Taxonomy nodes each user prefers.
        category_depth: Depth of the preferred nodes (paths shorter than this use their full path).
        min_category_products: Nodes with fewer products are never preferred.
        focus: Share of events drawn from the preferred nodes; the rest are uniform over the catalog.
        term_boost: Weight of products carrying the preferred attribute term inside the preferred nodes.
        event_mix: (event type, probability) pairs.
        spacing_s: Seconds between a user's consecutive events.
        start: Timestamp of every user's first event.
        seed: Base seed.
    """

    users: int = 100
    min_events: int = 0
    max_events: int = 20
    preferred_categories: int = 2
    category_depth: int = 2
    min_category_products: int = 5
    focus: float = 0.8
    term_boost: float = 3.0
    event_mix: tuple[tuple[str, float], ...] = (("click", 0.6), ("add_to_cart", 0.25), ("purchase", 0.15))
    spacing_s: float = 3600.0
    start: float = 1_700_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 0 or not 0 <= self.min_events <= self.max_events:
            raise PersonalizationError(
                f"need users >= 0 and 0 <= min_events <= max_events, got users={self.users}, "
                f"min_events={self.min_events}, max_events={self.max_events}"
            )
        if self.preferred_categories < 1 or self.category_depth < 1:
            raise PersonalizationError(
                "preferred_categories and category_depth must be >= 1, got "
                f"{self.preferred_categories} and {self.category_depth}"
            )
        if not 0.0 <= self.focus <= 1.0 or self.term_boost < 1.0:
            raise PersonalizationError(
                f"focus must be in [0, 1] and term_boost >= 1, got {self.focus}, {self.term_boost}"
            )
        if not self.event_mix or any(p < 0 for _, p in self.event_mix) or sum(p for _, p in self.event_mix) <= 0:
            raise PersonalizationError(
                f"event_mix needs non-negative probabilities with a positive sum, got {self.event_mix}"
            )


@dataclass(frozen=True)
class SimulatedUser:
    """A simulated user: the latent preferences it was drawn with, and its events (all `source="simulated"`)."""

    user_id: str
    preferred_categories: tuple[tuple[str, ...], ...]
    category_weights: tuple[float, ...]
    preferred_term: str | None
    events: tuple[UserEvent, ...]


def simulate_users(products: Sequence[Product], config: SimulationConfig) -> list[SimulatedUser]:
    """Draw `config.users` users over the taxonomy and attributes of `products` (ids "sim-00000", ...).

    Example:
        >>> simulate_users(products, SimulationConfig(users=10, seed=1))[0].preferred_categories  # doctest: +SKIP
        (('Games', 'Card Games'), ('Hobbies', 'Model Trains & Railway Sets'))
    """
    nodes: dict[tuple[str, ...], list[Product]] = defaultdict(list)
    for product in products:
        if product.taxonomy_path:
            nodes[product.taxonomy_path[: config.category_depth]].append(product)
    eligible = sorted(node for node, members in nodes.items() if len(members) >= config.min_category_products)
    if len(eligible) < config.preferred_categories:
        raise PersonalizationError(
            f"only {len(eligible)} taxonomy nodes at depth {config.category_depth} hold >= "
            f"{config.min_category_products} products, fewer than preferred_categories="
            f"{config.preferred_categories}; lower category_depth or min_category_products"
        )
    return [_simulate_user(index, products, nodes, eligible, config) for index in range(config.users)]


def _simulate_user(
    index: int,
    products: Sequence[Product],
    nodes: dict[tuple[str, ...], list[Product]],
    eligible: list[tuple[str, ...]],
    config: SimulationConfig,
) -> SimulatedUser:
    rng = keyed_rng(config.seed, "user", index)
    user_id = f"sim-{index:05d}"
    preferred = tuple(rng.sample(eligible, config.preferred_categories))
    node_weights = np.random.default_rng(rng.getrandbits(32)).dirichlet(np.ones(len(preferred)))
    terms = sorted({term for node in preferred for product in nodes[node] for term in _terms(product)})
    term = rng.choice(terms) if terms else None
    in_node_weights = [
        [config.term_boost if term in _terms(product) else 1.0 for product in nodes[node]] for node in preferred
    ]
    event_types = [name for name, _ in config.event_mix]
    event_probabilities = [probability for _, probability in config.event_mix]
    events = []
    for step in range(rng.randint(config.min_events, config.max_events)):
        if rng.random() < config.focus:
            slot = rng.choices(range(len(preferred)), weights=node_weights)[0]
            product = rng.choices(nodes[preferred[slot]], weights=in_node_weights[slot])[0]
        else:
            product = rng.choice(products)
        event = rng.choices(event_types, weights=event_probabilities)[0]
        events.append(UserEvent(user_id, product.id, event, config.start + step * config.spacing_s, "simulated"))
    return SimulatedUser(user_id, preferred, tuple(float(w) for w in node_weights), term, tuple(events))


def _terms(product: Product) -> set[str]:
    """Attribute terms a simulated user can prefer: the brand and string-valued attributes, lowercased."""
    terms = {f"{name}={value}".lower() for name, value in product.attributes.items() if isinstance(value, str)}
    if product.brand:
        terms.add(f"brand={product.brand}".lower())
    return terms
