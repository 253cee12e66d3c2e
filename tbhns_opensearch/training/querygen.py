"""Generate shopper-like queries from products, for catalogs without (enough) real queries.

Each product yields up to `per_product` queries, of kinds picked in a seeded order per product:

- `title`: 2-4 consecutive words from the head of the title (before the first ",", " - ", "|" or "("),
  with model numbers and SKU-like tokens removed (tokens mixing letters and digits such as "BX-200" or
  "E0123", and numbers of 5+ digits such as "10969"; "1000", "3+" and "12cm" stay), leading and
  trailing stopwords trimmed; at least two words with letters.
- `brand_type`: brand + product type, e.g. "lego building sets".
- `category`: the product type alone, e.g. "jigsaws".
- `attributes`: one or two short attribute values + product type, e.g. "red wooden trains".

The product type is the `type_attribute` value when given and present, else the leaf category. All text is
lowercased. Relevance follows the rule that made the query: a `title` query's source is its product; the
other kinds' sources are every product matching the rule (same type; same brand and type; same type and
attribute values), so a product the query equally describes is never mistaken for a negative. Sources get
grade 2. With `grade_mates`, products sharing brand and type with a source (not sources themselves) get
grade 1: they are plausible partial matches, and marking them keeps them out of the negatives. Queries
with the same text are merged (sources and mates united). Output is sorted by text and depends only on the
products and the seed.

Example:
    >>> from tbhns_opensearch.catalog.product import Product
    >>> p = Product(id="p1", title="LEGO 10969 DUPLO Fire Station, Toy for Toddlers", brand="LEGO",
    ...             taxonomy_path=("Toys", "Building Sets"))
    >>> sorted(q.kind for q in generate_queries([p], seed=0, per_product=4))
    ['brand_type', 'category', 'title']
    >>> [q.text for q in generate_queries([p], seed=0, per_product=4) if q.kind == "title"]
    ['fire station']
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import TrainingError
from tbhns_opensearch.eval.queries import LabelledQuery, query_key
from tbhns_opensearch.seeding import keyed_rng

KINDS = ("title", "brand_type", "category", "attributes")
_HEAD_SPLIT = re.compile(r",|\s[-–|]\s|\||\(|\[")
_UNIT = re.compile(r"^\d{1,4}(\.\d+)?(\+|x|d|pc|pcs|cm|mm|m|kg|g|ml|l|in|inch|ft|yr|yrs|years?|months?|v|w)?$")
_STOPWORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"})
_VAGUE_VALUES = frozenset({"yes", "no", "true", "false", "n/a", "na", "none", "unknown", "other"})


@dataclass(frozen=True)
class GeneratedQuery:
    """A generated query with the products it was made from.

    Args:
        text: The query, lowercased.
        kind: One of `KINDS` (the first kind that produced this text).
        source_ids: Products the query describes (grade 2), sorted.
        mate_ids: Products sharing brand and type with a source (grade 1), sorted; empty without `grade_mates`.
    """

    text: str
    kind: str
    source_ids: tuple[str, ...]
    mate_ids: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return "generated"

    def judgments(self) -> list[LabelledQuery]:
        """Grade 2 for sources, 1 for mates, all marked `source="generated"`."""
        return [LabelledQuery(self.text, pid, 2, "generated") for pid in self.source_ids] + [
            LabelledQuery(self.text, pid, 1, "generated") for pid in self.mate_ids
        ]


def strip_model_numbers(text: str) -> list[str]:
    """Lowercased words of `text` without model numbers, SKU-like tokens or punctuation.

    Example:
        >>> strip_model_numbers("Hasbro Connect 4 Game E0123 (BX-200), 1000 pcs, 10969")
        ['hasbro', 'connect', '4', 'game', '1000', 'pcs']
    """
    words = []
    for raw in text.lower().split():
        token = raw.strip(".,;:!?()[]{}\"'*#/")
        has_digit = any(c.isdigit() for c in token)
        is_sku = has_digit and not _UNIT.match(token)
        if token and not is_sku and any(c.isalnum() for c in token):
            words.append(token)
    return words


def generate_queries(
    products: Sequence[Product],
    *,
    seed: int,
    per_product: int = 2,
    type_attribute: str | None = None,
    grade_mates: bool = True,
) -> list[GeneratedQuery]:
    """Generate shopper-like queries (see the module docstring for the rules).

    Args:
        products: The catalog.
        seed: Seeds every choice; the same products and seed give the same queries.
        per_product: Kinds tried per product (a kind the product cannot make yields nothing).
        type_attribute: Attribute holding the product type (e.g. Icecat's); else the leaf category is used.
        grade_mates: Also grade 1 the products sharing brand and type with a source.
    """
    if per_product < 1:
        raise TrainingError(f"per_product={per_product} must be at least 1")
    catalog = _Catalog.build(products, type_attribute)
    merged: dict[str, tuple[str, set[str], set[str]]] = {}
    for product in products:
        rng = keyed_rng(seed, "querygen", product.id)
        kinds = list(KINDS if catalog.types[product.id] else ("title",))
        rng.shuffle(kinds)
        for kind in kinds[:per_product]:
            made = _MAKERS[kind](product, rng, catalog)
            if made is None:
                continue
            text, sources = made
            _, all_sources, all_mates = merged.setdefault(text, (kind, set(), set()))
            all_sources.update(sources)
            if grade_mates:
                all_mates.update(mate for source in sources for mate in catalog.mates(source))
    return [
        GeneratedQuery(text, kind, tuple(sorted(sources)), tuple(sorted(mates - sources)))
        for text, (kind, sources, mates) in sorted(merged.items())
    ]


@dataclass(frozen=True)
class _Catalog:
    """Lookups the query makers share: product type, products per type, ids per (brand, type)."""

    types: dict[str, str]  # product id -> type, "" when unknown
    by_type: dict[str, tuple[Product, ...]]  # type key -> products
    by_brand_type: dict[tuple[str, str], tuple[str, ...]]  # (brand key, type key) -> ids; branded only
    brand_type_of: dict[str, tuple[str, str]]  # product id -> (brand key, type key); branded only
    type_attribute: str | None

    @classmethod
    def build(cls, products: Sequence[Product], type_attribute: str | None) -> _Catalog:
        types: dict[str, str] = {}
        by_type: dict[str, list[Product]] = defaultdict(list)
        by_brand_type: dict[tuple[str, str], list[str]] = defaultdict(list)
        brand_type_of: dict[str, tuple[str, str]] = {}
        for product in products:
            value = str(product.attributes.get(type_attribute, "")).strip() if type_attribute else ""
            types[product.id] = value or product.leaf_category or ""
            if types[product.id]:
                by_type[query_key(types[product.id])].append(product)
                if product.brand.strip():
                    brand_type_of[product.id] = (query_key(product.brand), query_key(types[product.id]))
                    by_brand_type[brand_type_of[product.id]].append(product.id)
        return cls(
            types=types,
            by_type={key: tuple(group) for key, group in by_type.items()},
            by_brand_type={key: tuple(group) for key, group in by_brand_type.items()},
            brand_type_of=brand_type_of,
            type_attribute=type_attribute,
        )

    def mates(self, product_id: str) -> tuple[str, ...]:
        key = self.brand_type_of.get(product_id)
        return () if key is None else self.by_brand_type[key]


Made = tuple[str, list[str]] | None  # (query text, source ids), or None when the product cannot make one


def _title_query(product: Product, rng: Random, catalog: _Catalog) -> Made:
    words = strip_model_numbers(_HEAD_SPLIT.split(product.title, maxsplit=1)[0])
    length = min(rng.randint(2, 4), len(words))
    start = rng.randrange(len(words) - length + 1) if words else 0
    window = words[start : start + length]
    while window and window[0] in _STOPWORDS:
        window = window[1:]
    while window and window[-1] in _STOPWORDS:
        window = window[:-1]
    wordy = sum(any(c.isalpha() for c in word) for word in window)
    return (" ".join(window), [product.id]) if wordy >= 2 else None


def _brand_type_query(product: Product, rng: Random, catalog: _Catalog) -> Made:
    if product.id not in catalog.brand_type_of:
        return None
    return query_key(f"{product.brand} {catalog.types[product.id]}"), list(catalog.mates(product.id))


def _category_query(product: Product, rng: Random, catalog: _Catalog) -> Made:
    kind = query_key(catalog.types[product.id])
    return kind, [p.id for p in catalog.by_type[kind]]


def _attribute_query(product: Product, rng: Random, catalog: _Catalog) -> Made:
    values = {
        name: query_key(value)
        for name, value in product.attributes.items()
        if name != catalog.type_attribute and _is_query_value(value)
    }
    if not values:
        return None
    names = sorted(rng.sample(sorted(values), rng.randint(1, min(2, len(values)))))
    kind = query_key(catalog.types[product.id])
    sources = [
        p.id
        for p in catalog.by_type[kind]
        if all(query_key(str(p.attributes.get(name, ""))) == values[name] for name in names)
    ]
    return " ".join([*(values[name] for name in names), kind]), sources


def _is_query_value(value: object) -> bool:
    """Short words a shopper would type: not numbers, booleans, codes or vague values."""
    if not isinstance(value, str):
        return False
    words = query_key(value).split()
    return 1 <= len(words) <= 3 and words[0] not in _VAGUE_VALUES and not any(c.isdigit() for c in value)


_MAKERS: dict[str, Callable[[Product, Random, _Catalog], Made]] = {
    "title": _title_query,
    "brand_type": _brand_type_query,
    "category": _category_query,
    "attributes": _attribute_query,
}
