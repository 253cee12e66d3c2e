"""The canonical product record every reader and adapter produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Product:
    """One catalog product.

    Args:
        id: Stable product id; becomes the OpenSearch document `_id`, so a rerun overwrites.
        title: Product name shown to shoppers (required, non-empty).
        description: Free text, may be empty.
        brand: Brand or manufacturer, may be empty.
        attributes: Attribute name -> value (a string, number or boolean) or list of values (multi-valued);
            readers flatten nested objects into dotted names ("size.w").
        price: Price in the catalog's currency, or None.
        rating: Average rating, or None.
        taxonomy_path: Category names from root to leaf; empty when the catalog has no taxonomy.

    Example:
        >>> Product(id="p1", title="USB-C cable", taxonomy_path=("Electronics", "Cables")).leaf_category
        'Cables'
    """

    id: str
    title: str
    description: str = ""
    brand: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    price: float | None = None
    rating: float | None = None
    taxonomy_path: tuple[str, ...] = ()

    @property
    def leaf_category(self) -> str | None:
        return self.taxonomy_path[-1] if self.taxonomy_path else None

    def text_for_embedding(self) -> str:
        """The text the encoder sees: title, brand, leaf category and description."""
        parts = [self.title]
        if self.brand and self.brand.lower() not in self.title.lower():
            parts.append(self.brand)
        if self.leaf_category:
            parts.append(self.leaf_category)
        if self.description:
            parts.append(self.description)
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["taxonomy_path"] = list(self.taxonomy_path)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Product:
        return cls(**{**record, "taxonomy_path": tuple(record.get("taxonomy_path") or ())})
