"""The product template renders the encoder's dimension and the chosen HNSW settings (pure)."""

from __future__ import annotations

import pytest

from tbhns_opensearch.catalog import Product
from tbhns_opensearch.errors import TemplateError
from tbhns_opensearch.index.documents import decode_vector, product_document
from tbhns_opensearch.index.templates import IndexConfig, render_product_template


def test_render_sets_pattern_dimension_and_hnsw() -> None:
    template = render_product_template(IndexConfig(alias="shop", dimension=768, engine="faiss", space_type="l2", m=32))
    assert template["index_patterns"] == ["shop-*"]
    embedding = template["template"]["mappings"]["properties"]["embedding"]
    assert embedding == {
        "type": "knn_vector",
        "dimension": 768,
        "method": {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": "l2",
            "parameters": {"m": 32, "ef_construction": 128},
        },
    }
    assert "_comment" not in template


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "annoy"}, "unknown k-NN engine 'annoy'"),
        ({"engine": "lucene", "space_type": "l1"}, "not supported by engine 'lucene'"),
        ({"alias": "Products"}, "lowercase"),
        ({"dimension": 0}, "positive"),
    ],
)
def test_bad_index_config_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        IndexConfig(**kwargs)


def test_product_document_keeps_path_levels_and_vector() -> None:
    product = Product(
        id="p1",
        title="Wooden train",
        brand="Brio",
        attributes={"age": "3+"},
        price=19.5,
        taxonomy_path=("Toys", "Trains > Wooden"),
    )
    document = product_document(product, [0.5, 0.25])
    assert document["category_path"] == "Toys>Trains Wooden"
    assert document["category_levels"] == {"l0": "Toys", "l1": "Trains > Wooden"}
    assert document["category_leaf"] == "Trains > Wooden"
    assert document["attribute_terms"] == ["age=3+"]
    assert document["embedding"].tolist() == [0.5, 0.25]
    assert decode_vector(document["embedding_bytes"]).tolist() == [0.5, 0.25]
    assert product_document(Product(id="p2", title="x"), None)["category_path"] is None
