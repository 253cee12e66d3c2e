"""`tbhns bench run` with real-user style histories ([users]) against the real node.

The catalogs and orders are hand-made sets in Instacart's layouts (made up here and in
`tests/fixtures/instacart_sequences`; Instacart itself never enters the repository).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tbhns_opensearch.bench.runner import alias_for
from tbhns_opensearch.encoder import resolve_model_path
from tbhns_opensearch.users.attention import USER_MODEL_DIR, UserAttention, UserAttentionConfig, save_user_model
from tests.helpers import FIXTURES, run_bench

pytestmark = pytest.mark.integration
AISLES = {"1": "chocolate candy", "2": "tea", "3": "cookies cakes"}
PRODUCTS = {  # product id -> (name, aisle id)
    "101": ("Dark Chocolate Bar 70%", "1"),
    "102": ("Milk Chocolate Truffles", "1"),
    "103": ("Mint Candy", "1"),
    "104": ("Chocolate Covered Almonds", "1"),
    "201": ("Green Tea Bags", "2"),
    "202": ("Earl Grey Tea", "2"),
    "203": ("Chamomile Herbal Tea", "2"),
    "301": ("Chocolate Chip Cookies", "3"),
    "302": ("Lemon Pound Cake", "3"),
    "303": ("Oatmeal Raisin Cookies", "3"),
    "304": ("Vanilla Sponge Cake", "3"),
}
ORDERS = {  # order id -> (user id, order number, [product ids in add-to-cart order])
    "1": ("7", 1, ["101", "102"]),
    "2": ("7", 2, ["104", "102"]),
    "3": ("7", 3, ["201", "301"]),
    "4": ("8", 1, ["202"]),
    "5": ("8", 2, ["203", "302"]),
    "6": ("9", 1, ["303", "201"]),
}


def write_instacart_layout(directory: Path) -> None:
    directory.mkdir()
    (directory / "aisles.csv").write_text("aisle_id,aisle\n" + "".join(f"{k},{v}\n" for k, v in AISLES.items()))
    (directory / "departments.csv").write_text("department_id,department\n1,snacks\n")
    (directory / "products.csv").write_text(
        "product_id,product_name,aisle_id,department_id\n"
        + "".join(f'{pid},"{name}",{aisle},1\n' for pid, (name, aisle) in PRODUCTS.items())
    )
    (directory / "orders.csv").write_text(
        "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,"
        "days_since_prior_order\n"
        + "".join(f"{oid},{user},prior,{number},0,9,\n" for oid, (user, number, _) in ORDERS.items())
    )
    (directory / "order_products__prior.csv").write_text(
        "order_id,product_id,add_to_cart_order,reordered\n"
        + "".join(
            f"{oid},{pid},{position},0\n"
            for oid, (_, _, items) in ORDERS.items()
            for position, pid in enumerate(items, start=1)
        )
    )


def test_bench_with_users_personalizes_above_min_history_and_falls_back_below(
    opensearch_config, os_client, tmp_path: Path, monkeypatch
) -> None:
    data = tmp_path / "instacart"
    write_instacart_layout(data)
    (tmp_path / "bench.toml").write_text(
        f'title = "users bench"\ncatalog = "instacart"\ndata_dir = "{data}"\nsplit = "all"\nconcurrency = [1]\n'
        'primary_metric = "recall@24"\nbaselines = ["semantic"]\n'
        "[users]\nmin_history = 3\nalpha = 0.9\n"
        '[[systems]]\nname = "semantic"\nmode = "semantic"\nencoder = "all-MiniLM-L6-v2"\n'
        '[[systems]]\nname = "personalized"\nmode = "personalized"\nencoder = "all-MiniLM-L6-v2"\n'
        '[[systems]]\nname = "hybrid"\nmode = "hybrid"\nencoder = "all-MiniLM-L6-v2"\npersonalize = false\n'
    )
    out = tmp_path / "report"
    alias = alias_for("instacart", "all-MiniLM-L6-v2", str(data))
    cleanup = f"{alias}*,users-{alias}"  # the product index and its users index
    run_bench(tmp_path / "bench.toml", out, opensearch_config, os_client, cleanup, monkeypatch)
    report = json.loads((out / "report.json").read_text())
    systems = {system["name"]: system for system in report["systems"]}
    # user 7 (5 purchases before the held-out cookie) is personalized; 8 (1) and 9 (1) fall back
    assert systems["personalized"]["metadata"]["fallback_queries"] == "2"
    assert systems["hybrid"]["metadata"]["fallback_queries"] == "0"  # no user sent: nothing to fall back from
    history = report["breakdowns"]["user history (purchases)"]["semantic"]["recall@24"]
    assert {group: stat["count"] for group, stat in history.items()} == {"1-4": 2, "5+": 1}
    by_query = read_runs(out, ("semantic", "personalized"))
    assert by_query["personalized"]["u8-cookies-cakes"] == by_query["semantic"]["u8-cookies-cakes"]
    assert by_query["personalized"]["u7-cookies-cakes"] != by_query["semantic"]["u7-cookies-cakes"]
    assert "user history (purchases)" in (out / "summary.md").read_text()


def read_runs(out: Path, names: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """system -> qid -> product ids in rank order, from the TREC runs the bench wrote."""
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in names}
    for name in names:
        for line in (out / "runs" / f"{name}.trec").read_text().splitlines():
            qid, _, doc, *_ = line.split()
            runs[name].setdefault(qid, []).append(doc)
    return runs


def test_order_lines_bench_evaluates_every_user_with_blend_and_learned_personalization(
    opensearch_config, os_client, tmp_path: Path, monkeypatch
) -> None:
    sequences = FIXTURES / "instacart_sequences"
    encoder = tmp_path / "minilm-with-user-model"  # the packaged MiniLM, plus an (untrained) user model
    encoder.mkdir()
    for part in Path(resolve_model_path("all-MiniLM-L6-v2")).iterdir():
        (encoder / part.name).symlink_to(part)
    torch.manual_seed(0)
    save_user_model(UserAttention(UserAttentionConfig(max_history=5)), encoder / USER_MODEL_DIR)
    (tmp_path / "bench.toml").write_text(
        f'title = "sequences bench"\ndata_dir = "{sequences}"\nsplit = "all"\nconcurrency = [1]\n'
        'primary_metric = "recall@24"\nbaselines = ["blend"]\n'
        f'[users]\norder_lines = "{sequences / "order_lines.csv"}"\nmin_history = 1\nalpha = 0.9\n'
        '[[systems]]\nname = "plain"\nmode = "semantic"\nencoder = "all-MiniLM-L6-v2"\n'
        '[[systems]]\nname = "blend"\nmode = "personalized"\nencoder = "all-MiniLM-L6-v2"\n'
        f'[[systems]]\nname = "learned"\nmode = "personalized"\nencoder = "{encoder}"\n'
        f'[[systems]]\nname = "learned-reused"\nmode = "personalized"\nencoder = "{encoder}"\nuser_ttl_s = 60\n'
    )
    out = tmp_path / "report"
    aliases = [
        alias_for("instacart_sequences-order_lines", name, str(sequences))
        for name in ("all-MiniLM-L6-v2", str(encoder))
    ]
    run_bench(
        tmp_path / "bench.toml",
        out,
        opensearch_config,
        os_client,
        ",".join(f"{alias}*,users-{alias}" for alias in aliases),
        monkeypatch,
    )
    report = json.loads((out / "report.json").read_text())
    systems = {system["name"]: system for system in report["systems"]}
    assert systems["plain"]["evaluation"]["n_queries"] == 5  # users 7, 8 and 9: every user of the file
    assert systems["blend"]["metadata"]["personalization"] == "blend 5"
    assert systems["learned"]["metadata"]["personalization"] == "learned 5"  # the model beside the encoder
    assert "personalization" not in systems["plain"]["metadata"]
    assert (systems["learned"]["metadata"]["user_ttl_s"], systems["learned-reused"]["metadata"]["user_ttl_s"]) == (
        "0",
        "60",
    )
    assert "user_ttl_s" not in systems["plain"]["metadata"]
    runs = read_runs(out, ("plain", "blend", "learned", "learned-reused"))
    assert runs["blend"]["u7-tea"] != runs["plain"]["u7-tea"]  # the chamomile buyer's tea is personalized
    assert runs["learned-reused"] == runs["learned"]  # a profile reused answers as one read on every query
    history = report["breakdowns"]["user history (orders)"]["plain"]["recall@24"]
    assert {group: stat["count"] for group, stat in history.items()} == {"0-4": 1, "5-19": 2, "20+": 2}
    summary = (out / "summary.md").read_text()
    assert summary.count("Queries: **REAL users; DERIVED queries") >= 3  # under the effectiveness and breakdown tables
    assert "1 of 39 order lines dropped" in summary
    assert "paired by user (3 users, each user's queries averaged)" in summary  # a user's queries share a history
    assert "| 20+ | 2 | learned |" in summary  # every metric per history bucket and system
