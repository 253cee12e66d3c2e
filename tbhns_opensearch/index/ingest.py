"""Encode products and bulk-write them behind the product alias, encoding and writing at the same time.

The main thread encodes chunks of products (itself, or through the encoder's worker processes when it fans
out: `Encoder(workers=N)` or a device list, which hand the chunks back in catalog order) while a writer thread
streams the previous chunks to OpenSearch with opensearch-py's `streaming_bulk` (retries with backoff on 429).
Document ids are product ids, so a rerun after a crash overwrites instead of duplicating. A new index (the first
ingest, or `rebuild`) gets the alias only once it is complete and refreshed, and never when nothing was indexed;
indices that killed runs left behind the alias are deleted when the next new index is made.
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import OpenSearchException, TransportError
from tqdm import tqdm

from tbhns_opensearch.catalog.product import Product
from tbhns_opensearch.encoder import Encoder
from tbhns_opensearch.errors import IngestError
from tbhns_opensearch.index.documents import CatalogDigest, product_document
from tbhns_opensearch.index.remote_model import TEXT_FIELD
from tbhns_opensearch.index.templates import (
    UNIT_VECTOR_SPACES,
    IndexConfig,
    alias_meta,
    alias_targets,
    create_index,
    index_meta,
    swap_alias,
)
from tbhns_opensearch.index.vector_space import (
    SIGNATURE,
    carried_signature,
    encoder_signature,
    same_space,
    signature_in,
)

_DONE = object()
FINGERPRINT = "catalog_fingerprint"  # key in the index mapping's _meta
LATER_FIELDS = ("title_bytes",)
"""Document fields the template gained after indices were made with it; such an index is written without them."""


@dataclass(frozen=True)
class IngestConfig:
    """How products are encoded and written."""

    encode_chunk: int = field(
        default=512, metadata={"help": "products encoded per call (sorted by length inside, so larger is faster)"}
    )
    bulk_chunk: int = field(default=500, metadata={"help": "documents per bulk request"})
    max_retries: int = field(default=5, metadata={"help": "retries per bulk chunk on 429, with exponential backoff"})
    initial_backoff_s: float = field(default=2.0, metadata={"help": "seconds before the first retry; doubled after"})
    rebuild: bool = field(
        default=False, metadata={"help": "fill a new index and swap the alias at the end (zero downtime)"}
    )
    keep_previous: bool = field(
        default=False, metadata={"help": "with rebuild: keep the index the alias pointed at before"}
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    pipeline: str | None = field(
        default=None,
        metadata={"help": "let this embedding ingest pipeline (`tbhns deploy --pipeline`) embed the products"},
    )


@dataclass
class IngestSummary:
    """What an ingest did; `failures` keeps each rejected document's id and reason."""

    index: str
    backend: str = "torch"  # the encoder runtime that made the vectors
    read: int = 0
    indexed: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def products_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0


def ingest_products(
    client: OpenSearch,
    products: Iterable[Product],
    encoder: Encoder,
    index_config: IndexConfig | None = None,
    config: IngestConfig | None = None,
) -> IngestSummary:
    """Encode `products` and write them behind `index_config.alias`; return counts and per-document failures.

    Example:
        >>> ingest_products(client, read_products("catalog.jsonl"), Encoder())  # doctest: +SKIP
        IngestSummary(index='products-20260101...', read=19406, indexed=19406, ...)
    """
    config = config or IngestConfig()
    index_config = index_config or IndexConfig()
    trained_for = encoder.manifest.get("space_type")
    same_ranking = {trained_for, index_config.space_type} <= set(UNIT_VECTOR_SPACES)  # unit vectors: either one
    if trained_for and trained_for != index_config.space_type and not same_ranking:
        raise IngestError(
            f"the encoder {encoder.name_or_path!r} was trained for space type {trained_for!r} (its manifest) "
            f"but the index would use {index_config.space_type!r}; pass --space-type {trained_for}"
        )
    if index_config.dimension != encoder.dimension:
        index_config = IndexConfig(**{**index_config.__dict__, "dimension": encoder.dimension})
    previous = alias_targets(client, index_config.alias)
    fresh = config.rebuild or not previous  # a new index, served by nothing until the alias moves onto it
    started = time.perf_counter()
    try:
        index, unmapped = _target_index(client, index_config, fresh, previous)
        signature = _signature(client, encoder, index_config.alias, previous, fresh, config.pipeline)
        summary = IngestSummary(
            index=index, backend=f"pipeline {config.pipeline}" if config.pipeline else encoder.backend
        )
        aftermath = _aftermath(index, index_config.alias, fresh, previous)
        fingerprint = _fill(client, index, products, encoder, config, summary, fresh, unmapped, aftermath)
        # a fresh index holds exactly this catalog; one written into again holds a mix, which no catalog matches
        meta = {FINGERPRINT: fingerprint if fresh else None, SIGNATURE: signature}
        client.indices.put_mapping(index=index, body={"_meta": meta})
        if fresh:  # the alias moves only onto a complete, refreshed index
            swap_alias(client, index_config.alias, index, delete_previous=not config.keep_previous)
    except BaseException:  # Ctrl-C and SIGTERM included
        if fresh:  # what this run made and nothing serves: never left behind half-written
            _discard_unserved(client, index_config.alias, previous)
        raise
    summary.seconds = time.perf_counter() - started
    return summary


def _fill(
    client: OpenSearch,
    index: str,
    products: Iterable[Product],
    encoder: Encoder,
    config: IngestConfig,
    summary: IngestSummary,
    fresh: bool,
    unmapped: frozenset[str],
    aftermath: str,
) -> str:
    """Encode `products` while a writer thread bulk-writes them into `index`, stopping at the writer's first
    failure (then IngestError, ending with `aftermath`); return the catalog's fingerprint."""
    digest = CatalogDigest()
    # A fresh index is served by nothing yet: refresh off until it is complete. A live index keeps the template's
    # refresh (and gets it back where a killed run of an older version left it off), so writes become visible.
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "-1" if fresh else None}})
    chunks: queue.Queue[Any] = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    writer = threading.Thread(target=_write, args=(client, index, chunks, config, summary, errors), daemon=True)
    writer.start()
    try:
        with closing(_encoded(_batched(products, config.encode_chunk), encoder, config.pipeline)) as encoded:
            for batch, vectors in encoded:  # in catalog order, however many processes encode
                if errors:  # the writer failed: whatever is encoded now would be thrown away
                    break
                digest.add(batch)
                chunks.put(_documents(batch, vectors, unmapped))
                summary.read += len(batch)
    finally:
        chunks.put(_DONE)
        writer.join()
    if errors:
        raise IngestError(
            f"bulk writing to {index} failed after {summary.indexed} documents: {_describe(errors[0])}; {aftermath}",
            summary.failures,
        ) from errors[0]
    if fresh:  # a live index kept its refresh throughout
        client.indices.put_settings(index=index, body={"index": {"refresh_interval": None}})  # the template's
    client.indices.refresh(index=index)
    if fresh and not summary.indexed:
        raise IngestError(
            f"no product was indexed ({summary.read} read, {len(summary.failures)} refused): "
            f"a catalog without products never replaces one; {aftermath}",
            summary.failures,
        )
    return digest.hexdigest()


def _signature(
    client: OpenSearch, encoder: Encoder, alias: str, previous: list[str], fresh: bool, pipeline: str | None
) -> str | None:
    """The encoder signature the written index will store (`index.vector_space`): this encoder's, or the previous
    index's when this encoder shares its space; None when the space is unknown (a cluster pipeline embeds, or a
    live index without one). Writing into a live index of another encoder's space is refused before anything is
    written into it: its vectors would be a mix that no query encoder searches well."""
    if pipeline:
        return None
    signature = encoder_signature(encoder)
    if len(previous) != 1:  # a first index (a live one behind several indices was refused before)
        return signature
    stored = signature_in(index_meta(client, previous[0]))
    if fresh:
        return carried_signature(signature, stored)
    if stored is not None and not same_space(signature, stored):
        raise IngestError(
            f"index {previous[0]} behind alias {alias} holds vectors of another encoder than "
            f"{encoder.name_or_path!r} (another or a fine-tuned model: vectors of the two cannot be mixed); rerun "
            "with --rebuild to build a new index for this encoder, or ingest with the encoder it was built with"
        )
    return stored


def _aftermath(index: str, alias: str, fresh: bool, previous: list[str]) -> str:
    """What a failed ingest leaves, for its error message."""
    if not fresh:
        return f"the documents written stay in {index}, and a rerun overwrites them by product id"
    served = f"alias {alias} still points at {', '.join(previous)}" if previous else f"no alias {alias} was made"
    return f"{index} is deleted and {served}"


def _discard_unserved(client: OpenSearch, alias: str, previous: list[str]) -> None:
    """Delete this run's half-written index (a `<alias>-<timestamp>` index that the alias serves neither now nor
    before the run) when the cluster still answers; else the next new index deletes it."""
    try:
        _delete_orphans(client, alias, keep=previous + alias_targets(client, alias))
    except OpenSearchException:
        pass


def _describe(error: BaseException) -> str:
    """One line for a writer failure: a cluster error's type and status, never its URL or a traceback."""
    if isinstance(error, IngestError):
        return str(error)
    status = getattr(error, "status_code", None)
    kind = f"{type(error).__name__}{f' {status}' if isinstance(status, int) else ''}"
    detail = getattr(error, "error", None) if isinstance(error, TransportError) else None
    return f"{kind} ({detail})" if isinstance(detail, str) and detail != kind else kind


def _encoded(
    batches: Iterable[list[Product]], encoder: Encoder, pipeline: str | None
) -> Iterator[tuple[list[Product], np.ndarray | None]]:
    """Each batch with its vectors (len(batch), dim), in the order of `batches` (`Encoder.encode_batches`: a
    fanned-out encoder's workers encode a few batches ahead); with a `pipeline`, None: the cluster embeds."""
    if pipeline:
        yield from ((batch, None) for batch in batches)
        return
    yield from encoder.encode_batches((batch, [product.text_for_embedding() for product in batch]) for batch in batches)


def _documents(
    batch: list[Product], vectors: np.ndarray | None, unmapped: frozenset[str] = frozenset()
) -> list[tuple[str, dict[str, Any]]]:
    """(id, document) of each product: with its row of `vectors`, or (None: an embedding pipeline's ingest) with
    the text the pipeline embeds; without the `unmapped` fields (those an index made by an older template lacks:
    its strict mapping would refuse them)."""
    if vectors is None:
        documents = [product_document(product, None) | {TEXT_FIELD: product.text_for_embedding()} for product in batch]
    else:
        documents = [product_document(product, vector) for product, vector in zip(batch, vectors)]
    if unmapped:  # only for an index made by an older template; every other ingest sends the documents as made
        documents = [{k: v for k, v in document.items() if k not in unmapped} for document in documents]
    return [(product.id, document) for product, document in zip(batch, documents)]


def stored_fingerprint(client: OpenSearch, alias: str) -> str | None:
    """The `catalog_fingerprint` of the catalog the index behind `alias` was built from, or None when it is
    unknown (no such alias, written into more than once, or built before fingerprints were stored)."""
    return alias_meta(client, alias).get(FINGERPRINT)


def _target_index(
    client: OpenSearch, index_config: IndexConfig, fresh: bool, targets: list[str]
) -> tuple[str, frozenset[str]]:
    """The index to write into (a new one when `fresh`, else the alias's one of `targets`) and the fields of
    today's documents that its mapping lacks (an index made by an older template keeps its own layout until
    `--rebuild`)."""
    if fresh:
        _delete_orphans(client, index_config.alias, keep=targets)
        return create_index(client, index_config), frozenset()
    if len(targets) > 1:
        raise IngestError(f"alias {index_config.alias} points at several indices {targets}; rebuild with --rebuild")
    mapping = client.indices.get_mapping(index=targets[0])[targets[0]]["mappings"]
    dimension = mapping["properties"]["embedding"]["dimension"]
    if dimension != index_config.dimension:
        raise IngestError(
            f"index {targets[0]} holds {dimension}-dimensional vectors but the encoder makes "
            f"{index_config.dimension}; rerun with --rebuild to build a new index for this encoder"
        )
    return targets[0], frozenset(LATER_FIELDS) - set(mapping["properties"])


def _delete_orphans(client: OpenSearch, alias: str, keep: list[str]) -> None:
    """Delete `<alias>-<timestamp>` indices the alias does not point at: left by ingests killed before the swap."""
    pattern = re.compile(rf"{re.escape(alias)}-\d{{14}}-\d{{3}}")
    names = client.indices.get(index=f"{alias}-*", expand_wildcards="all", ignore_unavailable=True)
    orphans = [name for name in names if pattern.fullmatch(name) and name not in keep]
    if orphans:
        client.indices.delete(index=",".join(orphans))


def _write(
    client: OpenSearch,
    index: str,
    chunks: queue.Queue[Any],
    config: IngestConfig,
    summary: IngestSummary,
    errors: list[BaseException],
) -> None:
    """Bulk-write the queued chunks; the first failure of the cluster (a transport error, an answer that is no
    bulk response, an item refused for the cluster's sake) goes into `errors` and ends the writing."""
    done = threading.Event()  # the end marker was taken from the queue

    def actions() -> Iterator[dict[str, Any]]:
        while (chunk := chunks.get()) is not _DONE:
            for doc_id, document in chunk:
                yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": document}
        done.set()

    bar = tqdm(desc="indexed", unit="products", disable=not config.progress)
    try:
        for ok, item in helpers.streaming_bulk(
            client,
            actions(),
            chunk_size=config.bulk_chunk,
            max_retries=config.max_retries,
            initial_backoff=config.initial_backoff_s,
            raise_on_error=False,
            raise_on_exception=True,
            **({"pipeline": config.pipeline} if config.pipeline else {}),
        ):
            if ok:
                summary.indexed += 1
            else:
                result = item.get("index", item)
                failure = {"id": result.get("_id"), "status": result.get("status"), "error": result.get("error")}
                summary.failures.append(failure)
                if _cluster_refused(failure):
                    errors.append(IngestError(f"the cluster refused document {failure['id']!r}: {refusal(failure)}"))
                    break
            bar.update(1)
    except Exception as exc:  # whatever stopped the writer stops the ingest: nothing half-written is published
        errors.append(exc)
    finally:
        bar.close()
        while not done.is_set() and chunks.get() is not _DONE:  # drain so the encoder is never blocked
            pass


def _error_type(failure: dict[str, Any]) -> str:
    error = failure.get("error")
    return str(error.get("type")) if isinstance(error, dict) else str(error)


def refusal(failure: dict[str, Any]) -> str:
    """One line for a document the cluster refused: status, error type and reason (not the raw error dict).

    Example:
        >>> refusal({"id": "p1", "status": 400, "error": {"type": "mapper_parsing_exception",
        ...          "reason": "failed to parse field [price]", "caused_by": {"type": "x"}}})
        'status 400, mapper_parsing_exception: failed to parse field [price]'
    """
    error = failure.get("error")
    reason = error.get("reason") if isinstance(error, dict) else None
    return f"status {failure.get('status')}, {_error_type(failure)}" + (f": {reason}" if reason else "")


def _cluster_refused(failure: dict[str, Any]) -> bool:
    """A bulk item refused for the cluster's sake (a block such as a full disk's read-only index, rejected
    execution after the retries, a server error), not for the document's: every later item would fail too.

    Example:
        >>> _cluster_refused({"status": 429, "error": {"type": "cluster_block_exception"}})
        True
        >>> _cluster_refused({"status": 400, "error": {"type": "mapper_parsing_exception"}})
        False
    """
    status = failure.get("status")
    return (isinstance(status, int) and (status == 429 or status >= 500)) or _error_type(
        failure
    ) == "cluster_block_exception"


def _batched(items: Iterable[Product], size: int) -> Iterator[list[Product]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
