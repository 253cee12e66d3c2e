"""The Home Depot adapter on a hand-made file in the published layout (no Home Depot data in the repository)."""

import pytest

from tbhns_opensearch.catalog import Judgment
from tbhns_opensearch.catalog.adapters import load_judgments, read_dataset
from tbhns_opensearch.catalog.adapters.homedepot import homedepot_grade, read_homedepot_judgments
from tbhns_opensearch.errors import CatalogError
from tests.helpers import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "homedepot"


def test_products_are_ids_and_titles():
    products = list(read_dataset("homedepot", FIXTURE))
    assert [p.id for p in products] == ["900001", "900002", "900003", "900004", "900005"]
    assert products[3].title == "Interior Paint, Eggshell White 1 gal."
    assert products[3].taxonomy_path == () and products[3].brand == ""


@pytest.mark.parametrize(
    ("mean", "grade"),
    [
        (1.0, 0),
        (1.25, 0),
        (1.33, 0),
        (1.5, 1),
        (1.67, 1),
        (2.0, 1),
        (2.33, 1),
        (2.5, 2),
        (2.67, 2),
        (2.75, 2),
        (3.0, 2),
    ],
)
def test_raters_mean_maps_to_grades_half_up(mean, grade):
    assert homedepot_grade(mean) == grade


def test_judgments_of_the_folder_and_of_any_file_in_its_layout(tmp_path):
    judgments = load_judgments("homedepot", FIXTURE)
    assert judgments[:3] == [
        Judgment("angle bracket", "900001", 2),
        Judgment("angle bracket", "900002", 2),
        Judgment("angle bracket", "900003", 0),
    ]
    held_back = tmp_path / "test.csv"
    held_back.write_text("id,product_uid,search_term,relevance\n9,900005,hose,2.33\n")
    assert load_judgments("homedepot", FIXTURE, path=held_back) == [Judgment("hose", "900005", 1)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("9,900005,hose,4", r"bad.csv:2: relevance '4' is not a raters' mean between 1 and 3"),
        ("9,900005,hose,high", r"bad.csv:2: relevance 'high'"),
        ("9,900005,,2", r"bad.csv:2: empty search_term or product_uid"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"id,product_uid,search_term,relevance\n{row}\n")
    with pytest.raises(CatalogError, match=message):
        read_homedepot_judgments(path)


def test_missing_column_and_missing_file_say_what_to_pass(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("id,product_uid,query,relevance\n")
    with pytest.raises(CatalogError, match=r"j.csv:1: the header lacks columns \[.search_term.\]"):
        read_homedepot_judgments(path)
    with pytest.raises(CatalogError, match="does not exist; pass a CSV with the columns id,product_uid"):
        read_homedepot_judgments(tmp_path / "nope.csv")
