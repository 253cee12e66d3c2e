"""Real (Instacart) and simulated user histories."""

from collections import Counter
from pathlib import Path

import pytest

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import PersonalizationError
from tbhns_opensearch.users.events import UserEvent
from tbhns_opensearch.users.sources import (
    SimulationConfig,
    instacart_holdout,
    read_instacart_events,
    simulate_users,
)
from tests.helpers import ROOT

INSTACART = ROOT.parent / "shared" / "data" / "instacart"


@pytest.fixture
def tiny_instacart(tmp_path: Path) -> Path:
    """User 7: order 1 (p1, p2), order 2 (p3, p4, p5 in cart order); user 8: one order of p9; a stray line."""
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order\n"
        "10,7,prior,1,0,9,\n11,7,prior,2,1,9,7\n20,8,prior,1,2,9,\n"
    )
    (tmp_path / "order_products__prior.csv").write_text(
        "order_id,product_id,add_to_cart_order,reordered\n"
        "11,p5,3,0\n10,p1,1,0\n11,p3,1,0\n10,p2,2,0\n11,p4,2,1\n20,p9,1,0\n99,p0,1,0\n"
    )
    return tmp_path


def test_instacart_events_are_real_purchases_timed_by_order_number(tiny_instacart: Path) -> None:
    events = read_instacart_events(tiny_instacart)
    assert [(e.user_id, e.product_id, e.timestamp) for e in events] == [
        ("7", "p1", 1.0),
        ("7", "p2", 1.0),
        ("7", "p3", 2.0),
        ("7", "p4", 2.0),
        ("7", "p5", 2.0),
        ("8", "p9", 1.0),
    ]
    assert {(e.event, e.source) for e in events} == {("purchase", "real")}


def test_instacart_holdout_keeps_the_tail_of_the_last_order(tiny_instacart: Path) -> None:
    seven, eight = instacart_holdout(tiny_instacart, holdout_fraction=0.5)
    assert [e.product_id for e in seven.history] == ["p1", "p2", "p3"]
    assert seven.targets == ("p4", "p5")  # ceil(3 * 0.5) = 2 items of order 2, by add-to-cart order
    assert (eight.history, eight.targets) == ((), ("p9",))


def test_instacart_holdout_needs_the_files(tmp_path: Path) -> None:
    with pytest.raises(PersonalizationError, match=r"lacks Instacart files \['orders.csv'"):
        instacart_holdout(tmp_path)


@pytest.mark.skipif(not INSTACART.is_dir(), reason=f"the Instacart sample is not at {INSTACART}")
def test_real_instacart_sample_reads() -> None:
    users = instacart_holdout(INSTACART)
    assert len(users) > 1000
    assert all(user.targets for user in users)
    assert {event.source for user in users[:50] for event in user.history} <= {"real"}


PRODUCTS = [
    Product(
        id=f"{leaf[:2]}{i}", title=f"{leaf} {i}", brand="Acme" if i % 3 == 0 else "Other", taxonomy_path=("Toys", leaf)
    )
    for leaf in ("Trains", "Puzzles", "Kites", "Dolls")
    for i in range(6)
]


def test_simulator_is_seeded_and_marks_every_event_simulated() -> None:
    config = SimulationConfig(users=5, min_events=2, max_events=8, seed=3)
    first, second = simulate_users(PRODUCTS, config), simulate_users(PRODUCTS, config)
    assert first == second
    assert simulate_users(PRODUCTS, SimulationConfig(users=5, min_events=2, max_events=8, seed=4)) != first
    events = [event for user in first for event in user.events]
    assert {event.source for event in events} == {"simulated"}
    assert all(2 <= len(user.events) <= 8 for user in first)
    assert [user.user_id for user in first] == [f"sim-0000{i}" for i in range(5)]
    assert all(isinstance(event, UserEvent) and event.user_id.startswith("sim-") for event in events)


def test_simulated_events_follow_the_latent_preferences() -> None:
    config = SimulationConfig(
        users=20,
        min_events=30,
        max_events=30,
        preferred_categories=1,
        focus=1.0,
        term_boost=50.0,
        min_category_products=5,
    )
    by_id = {product.id: product for product in PRODUCTS}
    for user in simulate_users(PRODUCTS, config):
        paths = {by_id[event.product_id].taxonomy_path for event in user.events}
        assert paths == set(user.preferred_categories)
        brands = Counter(f"brand={by_id[event.product_id].brand}".lower() for event in user.events)
        assert brands.most_common(1)[0][0] == user.preferred_term


def test_simulator_explains_a_too_shallow_catalog() -> None:
    with pytest.raises(PersonalizationError, match="lower category_depth or min_category_products"):
        simulate_users(PRODUCTS, SimulationConfig(preferred_categories=5))
