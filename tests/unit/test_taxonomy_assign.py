"""Zero-shot taxonomy assignment on a hand-made tree with hand-made vectors: known answers, and the unknown."""

import json

import numpy as np
import pytest

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.taxonomy_assign import (
    Assignment,
    CategoryTree,
    assign_products,
    read_assignments,
    with_assigned_paths,
    write_assignments,
)

TREE = CategoryTree.parse(
    [
        "# Google_Product_Taxonomy_Version: 2021-09-21",
        "1 - Hardware",
        "2 - Hardware > Tools",
        "3 - Hardware > Fasteners",
        "4 - Toys",
    ]
)
# Node vectors in TREE.nodes order: Hardware, Hardware > Tools, Hardware > Fasteners, Toys.
NODES = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.8, -0.6, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def unit(*values: float) -> list[float]:
    vector = np.array(values, dtype=np.float64)
    return list(vector / np.linalg.norm(vector))


def test_parse_reads_google_lines_and_plain_paths_and_adds_parents():
    assert TREE.nodes == (("Hardware",), ("Hardware", "Tools"), ("Hardware", "Fasteners"), ("Toys",))
    assert CategoryTree.parse(["Garden > Hoses > Reels"]).nodes == (
        ("Garden",),
        ("Garden", "Hoses"),
        ("Garden", "Hoses", "Reels"),
    )
    assert TREE.texts()[1] == "Hardware > Tools"
    with pytest.raises(CatalogError, match=r"<lines>:1: empty category name in 'A >  > B'"):
        CategoryTree.parse(["A >  > B"])


def test_descends_to_the_leaf_it_is_sure_of():
    products = np.array([unit(0.8, 0.6, 0.0), unit(0.8, -0.6, 0.0), unit(0.1, 0.0, 1.0)], dtype=np.float32)
    got = assign_products(["drill", "screws", "doll"], products, TREE, NODES, temperature=0.2)
    assert [a.path for a in got] == [("Hardware", "Tools"), ("Hardware", "Fasteners"), ("Toys",)]
    # Hand computation for "drill", temperature 0.2. Top: Hardware scores its subtree's best cosine, 1.0 (Tools),
    # Toys 0.0. Second step: cosines 1.0 (Tools) and 0.28 (Fasteners). Confidence: the weaker step.
    top, tools = 1 / (1 + np.exp((0.0 - 1.0) / 0.2)), 1 / (1 + np.exp((0.28 - 1.0) / 0.2))
    assert got[0].confidence == pytest.approx(min(top, tools), rel=1e-4)
    assert got[0].confidence == pytest.approx(tools, rel=1e-4)  # 0.973 < 0.993


def test_stops_at_the_parent_when_children_tie_and_is_unknown_when_the_top_is_unsure():
    between_tools_and_fasteners = unit(1.0, 0.0, 0.0)  # cosine 0.8 with both children: probability 0.5 each
    between_hardware_and_toys = unit(1.0, 0.0, 1.0)  # cosine 0.707 with both top nodes
    products = np.array([between_tools_and_fasteners, between_hardware_and_toys], dtype=np.float32)
    got = assign_products(["bracket", "thing"], products, TREE, NODES, min_confidence=0.6)
    assert got[0] == Assignment("bracket", ("Hardware",), pytest.approx(1.0, abs=1e-6))
    assert got[1] == Assignment("thing", (), 0.0)


def test_assignments_round_trip_and_overlay_products(tmp_path):
    path = tmp_path / "a.jsonl"
    write_assignments([Assignment("a", ("Hardware", "Tools"), 0.91), Assignment("b", (), 0.0)], path)
    paths = read_assignments(path)
    assert paths == {"a": ("Hardware", "Tools"), "b": ()}
    overlaid = with_assigned_paths([Product("a", "Drill"), Product("c", "Doll", taxonomy_path=("Toys",))], paths)
    assert [p.taxonomy_path for p in overlaid] == [("Hardware", "Tools"), ("Toys",)]
    path.write_text('{"id": "a"}\n')
    with pytest.raises(CatalogError, match=r"a.jsonl:1: not an assignment line"):
        read_assignments(path)


def test_cli_places_products_of_a_catalog_under_a_taxonomy_file(tmp_path):
    from click.testing import CliRunner

    from tbhns_opensearch.cli import cli

    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        "".join(
            json.dumps({"id": pid, "title": title}) + "\n"
            for pid, title in [
                ("1", "20V cordless drill with 2 batteries"),
                ("2", "50 ft garden hose with spray nozzle"),
                ("3", "plush teddy bear for toddlers"),
            ]
        )
    )
    taxonomy = tmp_path / "taxonomy.txt"
    taxonomy.write_text(
        "Hardware\nHardware > Power Tools\nHardware > Power Tools > Drills\nHome & Garden\n"
        "Home & Garden > Lawn & Garden > Watering & Irrigation > Garden Hoses\nToys & Games\n"
        "Toys & Games > Toys > Dolls, Playsets & Toy Figures > Stuffed Animals\n"
    )
    out = tmp_path / "assigned.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "taxonomy",
            "assign",
            str(catalog),
            "--taxonomy-file",
            str(taxonomy),
            "--out",
            str(out),
            "--min-confidence",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    paths = read_assignments(out)
    assert paths["1"][:2] == ("Hardware", "Power Tools")
    assert paths["2"][0] == "Home & Garden" and paths["3"][0] == "Toys & Games"
    assert "3 products" in result.output
