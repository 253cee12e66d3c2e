"""Turn a Product and its vector into the OpenSearch document of the product template (pure)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tbhns_opensearch.catalog.product import Product

MAX_LEVELS = 8
PATH_DELIMITER = ">"


def category_path_value(path: Sequence[str]) -> str:
    """The `category_path` field value: names joined by '>' (prefix-searchable by path_hierarchy).

    Example:
        >>> category_path_value(["Toys", "Dolls > Accessories"])
        'Toys>Dolls Accessories'
    """
    return PATH_DELIMITER.join(" ".join(name.replace(PATH_DELIMITER, " ").split()) for name in path)


def product_document(product: Product, vector: Sequence[float] | None) -> dict[str, Any]:
    """The document for `product`; its `_id` is the product id, so a rerun overwrites it. A list attribute gives
    one `attribute_terms` keyword per value, so `attr=colors=red` matches {"colors": ["red", "blue"]}."""
    path = list(product.taxonomy_path)
    attributes = [(name, value if isinstance(value, list) else [value]) for name, value in product.attributes.items()]
    document: dict[str, Any] = {
        "product_id": product.id,
        "title": product.title,
        "title_bytes": text_bytes(product.title),
        "description": product.description,
        "brand": product.brand,
        "attributes_text": [f"{name}: {', '.join(map(str, values))}" for name, values in attributes],
        "attribute_terms": [f"{name}={value}" for name, values in attributes for value in values],
        "category_names": path,
        "category_path": category_path_value(path) if path else None,
        "category_levels": {f"l{level}": name for level, name in enumerate(path[:MAX_LEVELS])},
        "category_leaf": path[-1] if path else None,
        "category_depth": len(path),
        "price": product.price,
        "rating": product.rating,
    }
    if vector is not None:
        document["embedding"] = np.asarray(vector, dtype=np.float32)  # written in float32's shortest exact form
        document["embedding_bytes"] = vector_bytes(vector)
    return document


def vector_bytes(vector: Sequence[float]) -> str:
    """The `embedding_bytes` value: the vector as little-endian float32, base64. Kept in doc values (the
    template keeps both vector fields out of `_source`), it is how vectors are read back (`decode_vector`).

    Example:
        >>> decode_vector(vector_bytes([0.5, 0.25])).tolist()
        [0.5, 0.25]
    """
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(value: str) -> np.ndarray:
    """The float32 vector (dim,) of an `embedding_bytes` value; doc values come without base64's `=` padding.

    Example:
        >>> decode_vector("zcxMP5qZGT8") == np.float32([0.8, 0.6])  # 8 bytes: "zcxMP5qZGT8=" in `_source`
        array([ True,  True])
    """
    return np.frombuffer(base64.b64decode(value + "=" * (-len(value) % 4)), dtype="<f4").copy()


def text_bytes(text: str) -> str:
    """The `title_bytes` value: the text's UTF-8, base64. A binary doc value is how a page reads titles: far
    cheaper per hit than a keyword's terms-dictionary lookup or a stored-fields block, and of any length.

    Example:
        >>> decode_text(text_bytes("Hammer, 16 oz"))
        'Hammer, 16 oz'
    """
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_text(value: str) -> str:
    """The text of a `title_bytes` value, padded or not (OpenSearch returns binary doc values unpadded).

    Example:
        >>> decode_text("SGk")
        'Hi'
    """
    return base64.b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")


def catalog_fingerprint(products: Iterable[Product]) -> str:
    """A digest of the catalog's content: every product's document (vectors aside), in catalog order. Ingest
    stores it in the index's `_meta`, so a reader can tell an index built from this very catalog from one built
    from an older copy of the same size.

    Example:
        >>> first = Product(id="1", title="Claw hammer")
        >>> catalog_fingerprint([first]) == catalog_fingerprint([Product(id="1", title="Claw hammer")])
        True
        >>> catalog_fingerprint([first]) == catalog_fingerprint([Product(id="1", title="Sledge hammer")])
        False
    """
    digest = CatalogDigest()
    digest.add(products)
    return digest.hexdigest()


class CatalogDigest:
    """`catalog_fingerprint`, fed a batch at a time while the products stream past."""

    def __init__(self) -> None:
        self._sha1 = hashlib.sha1()

    def add(self, products: Iterable[Product]) -> None:
        for product in products:
            document = json.dumps(product_document(product, None), sort_keys=True, default=str)
            self._sha1.update(document.encode() + b"\n")

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()
