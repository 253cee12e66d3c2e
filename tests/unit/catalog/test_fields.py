"""Field parsers: what each accepts, and the field, value and fix each names when it refuses."""

import math

import pytest

from tbhns_opensearch.catalog.fields import (
    parse_count,
    parse_id,
    parse_path,
    parse_price,
    parse_rating,
    parse_title,
)
from tbhns_opensearch.catalog.stream import RecordError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.5, 3.5),
        (4, 4.0),
        ("9.99", 9.99),
        ("£3.42", 3.42),
        ("£3.99 - £5.99", 3.99),
        ("$3 \u2013 $5", 3.0),
        ("Rs. 1,299.00", 1299.0),
        ("12,99 €", 12.99),
        ("USD 10", 10.0),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_price_accepts_numbers_currencies_and_ranges(value, expected):
    assert parse_price(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "cheap",
        "-3.00",
        "3.99 each day",
        True,
        {"amount": 3},
        float("inf"),
        "inf",
        "nan",
        1e39,
        pytest.param(10**400, id="10**400"),
        "340,282,400,000,000,000,000,000,000,000,000,000,000",
    ],
)
def test_parse_price_rejects_non_prices_naming_the_column(value):
    with pytest.raises(RecordError) as caught:
        parse_price(value, "cost")
    assert caught.value.field == "cost"
    assert "price" in caught.value.reason and caught.value.fix


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4.5 out of 5 stars", 4.5), ("4/5", 4.0), (" 3.9 ", 3.9), (5, 5.0), ("", None)],
)
def test_parse_rating(value, expected):
    assert parse_rating(value) == expected


def test_a_number_beyond_float32_is_a_record_error_not_a_refusal_by_the_cluster():
    with pytest.raises(RecordError, match=r"beyond the largest number OpenSearch's float field holds"):
        parse_rating(3.5e38)
    assert parse_price(3.4e38) == 3.4e38


def test_parse_rating_rejects_words():
    with pytest.raises(RecordError, match="rating is not a number"):
        parse_rating("five stars")


def test_parse_count_requires_whole_numbers():
    assert (parse_count("1,040", "n"), parse_count(15.0, "n"), parse_count(None, "n")) == (1040, 15, None)
    with pytest.raises(RecordError, match="whole number"):
        parse_count("2.5", "n")


def test_parse_id_normalises_numbers_and_refuses_blanks():
    assert (parse_id(42), parse_id(42.0), parse_id(" a-1 ")) == ("42", "42", "a-1")
    for bad in (None, "  ", math.nan):
        with pytest.raises(RecordError, match="missing id"):
            parse_id(bad)


def test_parse_title_refuses_blank():
    with pytest.raises(RecordError) as caught:
        parse_title("   ", "product_name")
    assert (caught.value.field, caught.value.reason) == ("product_name", "missing title")


@pytest.mark.parametrize(
    ("value", "separator", "expected"),
    [
        ("Toys > Games > Card  Games", " > ", ("Toys", "Games", "Card Games")),
        ('["Toys", " Games "]', " > ", ("Toys", "Games")),
        (("A", "", "B"), " / ", ("A", "B")),
        ("Indoor/Outdoor / Rugs", " / ", ("Indoor/Outdoor", "Rugs")),
        (None, " > ", ()),
    ],
)
def test_parse_path(value, separator, expected):
    assert parse_path(value, separator) == expected


def test_parse_path_refuses_broken_json_list():
    with pytest.raises(RecordError, match="not a valid JSON list"):
        parse_path('["Toys", ', " > ")


def test_an_id_opensearch_would_refuse_is_a_record_error():
    assert parse_id("é" * 256) == "é" * 256  # 512 bytes: accepted
    with pytest.raises(RecordError, match="longer than OpenSearch's 512 bytes"):
        parse_id("x" * 513)


@pytest.mark.parametrize(
    ("value", "kind"), [({"en": "Nested title"}, "an object"), (["a", "b"], "a list"), (True, "a boolean")]
)
def test_text_fields_refuse_values_that_would_be_indexed_as_python_reprs(value, kind):
    with pytest.raises(RecordError, match=f"{kind}, not text") as caught:
        parse_title(value)
    assert caught.value.field == "title"
