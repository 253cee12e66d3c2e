"""Which source column holds which `Product` field, and the conversion of one record through it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tbhns_opensearch.catalog.fields import (
    attribute_entries,
    is_missing,
    parse_attributes,
    parse_id,
    parse_path,
    parse_price,
    parse_rating,
    parse_text,
    parse_title,
)
from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.errors import CatalogError
from tbhns_opensearch.textfiles import path_problem

OPTIONAL_COLUMNS = ("description", "brand", "price", "rating", "taxonomy", "attributes")


@dataclass(frozen=True)
class ColumnMapping:
    """Canonical field -> source column. The defaults read the canonical catalog JSONL.

    Args:
        id: Column with the product id (required in every record).
        title: Column with the title (required in every record).
        description: Column with the description, or None.
        brand: Column with the brand, or None.
        price: Column with the price (number or text like "£3.99"), or None.
        rating: Column with the average rating, or None.
        taxonomy: Column with the category path (a list, JSON list text, or text split on
            `taxonomy_separator`), or None.
        taxonomy_separator: Separator of a path written as text.
        attributes: Column holding a dict (or JSON object text) of attributes, or None.
        attribute_columns: Further columns copied into `attributes` under their own names.

    Example:
        >>> m = ColumnMapping.from_dict({"id": "sku", "title": "name", "attribute_columns": ["colour"]})
        >>> m.to_product({"sku": 7, "name": "Mug", "colour": "red"}).attributes
        {'colour': 'red'}
    """

    id: str = "id"
    title: str = "title"
    description: str | None = "description"
    brand: str | None = "brand"
    price: str | None = "price"
    rating: str | None = "rating"
    taxonomy: str | None = "taxonomy_path"
    taxonomy_separator: str = " > "
    attributes: str | None = "attributes"
    attribute_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("id", "title", *OPTIONAL_COLUMNS):
            value = getattr(self, name)
            if not (isinstance(value, str) and value) and not (value is None and name in OPTIONAL_COLUMNS):
                raise CatalogError(
                    f"column mapping: {name}={value!r} must name a source column; "
                    f"e.g. ColumnMapping({name}='product_{name}')" + (" or None" if name in OPTIONAL_COLUMNS else "")
                )
        if not isinstance(self.taxonomy_separator, str) or not self.taxonomy_separator:
            raise CatalogError(
                f"column mapping: taxonomy_separator={self.taxonomy_separator!r} is not a "
                "non-empty string; use e.g. ' > '"
            )
        columns = self.attribute_columns
        if isinstance(columns, str) or not all(isinstance(column, str) and column for column in columns):
            raise CatalogError(
                f"column mapping: attribute_columns={columns!r} must be a list of column names; e.g. ['colour', 'size']"
            )
        object.__setattr__(self, "attribute_columns", tuple(columns))

    @classmethod
    def from_dict(cls, mapping: dict[str, Any]) -> ColumnMapping:
        """Build from a plain dict (CLI flags or a JSON file); unknown keys are an error.

        Fields that are not given are unmapped (None), except `id` and `title`, which keep their
        canonical column names.
        """
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - valid)
        if unknown:
            raise CatalogError(f"column mapping: unknown field(s) {unknown}; valid fields are {sorted(valid)}")
        return cls(**{**{name: None for name in OPTIONAL_COLUMNS}, **mapping})

    @classmethod
    def from_file(cls, path: str | Path) -> ColumnMapping:
        """Read a JSON object file such as `{"id": "sku", "title": "name"}` (see `from_dict`); any problem with
        the file is one CatalogError naming it.

        Example:
            >>> ColumnMapping.from_file("mapping.json").id  # doctest: +SKIP
            'sku'
        """
        path = Path(path)
        example = 'write one JSON object, e.g. {"id": "sku", "title": "name"}'
        problem = path_problem(path)
        if problem:
            raise CatalogError(f"mapping file {str(path)!r} {problem}; pass a JSON file: {example}")
        try:
            text = path.read_bytes().decode("utf-8")
            mapping = json.loads(text)
        except UnicodeDecodeError as exc:
            raise CatalogError(
                f"mapping file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
            ) from exc
        except (ValueError, RecursionError) as exc:
            problem = "is empty" if not text.strip() else f"is not valid JSON ({exc})"
            raise CatalogError(f"mapping file {str(path)!r} {problem}; {example}") from exc
        except OSError as exc:
            raise CatalogError(
                f"mapping file {str(path)!r} cannot be read ({exc.strerror}); pass a readable file"
            ) from exc
        if not isinstance(mapping, dict):
            raise CatalogError(
                f"mapping file {str(path)!r} holds a JSON {_json_kind(mapping)}, not an object; {example}"
            )
        try:
            return cls.from_dict(mapping)
        except CatalogError as exc:
            raise CatalogError(f"mapping file {str(path)!r}: {exc}") from exc

    def columns(self) -> tuple[str, ...]:
        """Every source column this mapping reads, in field order."""
        named = (
            self.id,
            self.title,
            self.description,
            self.brand,
            self.price,
            self.rating,
            self.taxonomy,
            self.attributes,
        )
        return tuple(dict.fromkeys([c for c in named if c] + list(self.attribute_columns)))

    def check_header(self, header: Iterable[str], source: str, *, strict: bool) -> None:
        """Fail early when the file lacks mapped columns.

        Args:
            header: Column names of the file.
            source: File name for the message.
            strict: Require every mapped column; otherwise only `id` and `title`.
        """
        present = set(header)
        wanted = self.columns() if strict else (self.id, self.title)
        missing = [column for column in wanted if column not in present]
        if missing:
            raise CatalogError(
                f"{source}: column(s) {missing} named by the column mapping are not in the file; "
                f"its columns are {sorted(present)}. Pass a mapping that names them, "
                f"e.g. ColumnMapping.from_dict({{'id': ..., 'title': ...}})"
            )

    def to_product(self, record: dict[str, Any]) -> Product:
        """Convert one record; raises `RecordError` naming the bad column."""
        return Product(
            id=parse_id(record.get(self.id), self.id),
            title=parse_title(record.get(self.title), self.title),
            description=parse_text(record.get(self.description), self.description) if self.description else "",
            brand=parse_text(record.get(self.brand), self.brand) if self.brand else "",
            attributes=self._attributes(record),
            price=parse_price(record.get(self.price), self.price) if self.price else None,
            rating=parse_rating(record.get(self.rating), self.rating) if self.rating else None,
            taxonomy_path=(
                parse_path(record.get(self.taxonomy), self.taxonomy_separator, self.taxonomy) if self.taxonomy else ()
            ),
        )

    def _attributes(self, record: dict[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if self.attributes and not is_missing(record.get(self.attributes)):
            attributes.update(parse_attributes(record[self.attributes], self.attributes))
        for column in self.attribute_columns:
            attributes.update(attribute_entries(column, record.get(column), column))
        return attributes


def _json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


CANONICAL = ColumnMapping()
