"""Hybrid pages: BM25 and a query vector fused on the server (a `hybrid` query through a search pipeline, when the
cluster has neural-search) or on the client (both candidate lists in one `_msearch`, fused by `fusion.fuse`).

Example:
    >>> from tbhns_opensearch.config import OpenSearchConfig
    >>> transport = ProductTransport(OpenSearchConfig(url="http://127.0.0.1:9200"), "products")  # connects to nothing
    >>> hybrid = HybridSearch(transport, HybridConfig())
    >>> hybrid.depth_for(offset=90, k=24) >= 114
    True
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tbhns_opensearch.cluster.connection import msearch_item
from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query.builders import build_bm25, build_hybrid, build_knn, display_from_doc_values, ids_only
from tbhns_opensearch.query.fusion import HybridConfig, fuse, search_pipeline
from tbhns_opensearch.query.results import SearchHit, SearchRequest, parse_hits, score_parts
from tbhns_opensearch.query.transport import ProductTransport, Rider

END_OF_RESULTS = "Reached end of search result"  # neural-search's 400 for a hybrid page past the last hit


class HybridSearch:
    """Hybrid pages of the transport's alias with `config`'s fusion, weights, depth and path; `model_id`: an
    encoder deployed in the cluster embeds the text when no vector is given (server path only)."""

    def __init__(self, transport: ProductTransport, config: HybridConfig, model_id: str | None = None) -> None:
        self.transport = transport
        self.config = config
        self.model_id = model_id

    def depth_for(self, offset: int, k: int) -> int:
        """Candidates per sub-query: the configured depth, or more when the page reaches past it."""
        return max(self.config.depth, offset + k)

    def resolve_path(self, path: str) -> str:
        """ "server" or "client" for `path` ("auto" picks server where the cluster can fuse this fusion)."""
        capabilities = self.transport.capabilities
        capable = capabilities.has_rrf if self.config.fusion == "rrf" else capabilities.has_hybrid
        if path == "auto":
            return "server" if capable else "client"
        if path == "server" and not capable:
            raise SearchError(
                f"server-side hybrid ({self.config.fusion}) needs the neural-search plugin (RRF: 2.19 or later); "
                f"cluster {capabilities.version} has {sorted(capabilities.plugins)}. Use path='client'"
            )
        return path

    def page(
        self, path: str, request: SearchRequest, vector: np.ndarray, depth: int, rider: Rider | None = None
    ) -> list[SearchHit]:
        """The fused page on `path` ("server" or "client")."""
        return (self.server if path == "server" else self.client)(request, vector, depth, rider)

    def server(
        self, request: SearchRequest, vector: np.ndarray | None, depth: int, rider: Rider | None = None
    ) -> list[SearchHit]:
        """The fused page from the cluster; `vector` None: the cluster embeds the text (`model_id`)."""
        name = self.transport.pipeline(*search_pipeline(self.config))
        body = build_hybrid(
            request.text,
            vector,
            request.k,
            depth,
            request.filters,
            request.offset,
            model_id=self.model_id if vector is None else None,
        )
        try:
            if self.transport.display_doc_values:
                hits = self.transport.page(body, None, rider, search_pipeline=name)
            else:  # stored fields of all 2 x depth candidates would cost more than a second request for the page
                ranked = parse_hits(self.transport.search(ids_only(body), rider, search_pipeline=name))
                hits = self.transport.fetch([(hit.id, hit.score) for hit in ranked], {})
        except SearchError as exc:
            if END_OF_RESULTS not in str(getattr(exc.__cause__, "info", "")):
                raise
            return []  # neural-search refuses a page past the last hit; every other path answers an empty page
        if request.explain and vector is not None:
            parts = score_parts(self.sub_queries(request, vector, depth))
            hits = [replace(hit, parts=parts.get(hit.id, {})) for hit in hits]
        return hits

    def client(
        self, request: SearchRequest, vector: np.ndarray, depth: int, rider: Rider | None = None
    ) -> list[SearchHit]:
        """Both candidate lists, display fields included, in one msearch (the node runs the two searches side by
        side), fused here; an index without display doc values reads the page with `mget`."""
        bm25, knn = self.sub_queries(request, vector, depth, display=True, rider=rider)
        ranked = [[(hit.id, hit.score) for hit in hits] for hits in (bm25, knn)]
        fused = fuse(ranked, self.config)[request.offset : request.offset + request.k]
        parts = score_parts((bm25, knn)) if request.explain else {}
        if self.transport.display_doc_values:
            candidates = {hit.id: hit for hit in (*knn, *bm25)}
            return [
                replace(candidates[product_id], score=score, parts=parts.get(product_id, {}))
                for product_id, score in fused
            ]
        return self.transport.fetch(fused, parts)

    def sub_queries(
        self,
        request: SearchRequest,
        vector: np.ndarray,
        depth: int,
        display: bool = False,
        rider: Rider | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """The BM25 and knn candidate lists (top `depth` each) that hybrid fuses, in one msearch; with `display`,
        each hit's display fields from doc values where the index has them, else ids and scores only."""
        shape = display_from_doc_values if display and self.transport.display_doc_values else ids_only
        bodies = [
            shape(build_bm25(request.text, depth, request.filters)),
            shape(build_knn(vector, depth, request.filters)),
        ]
        with self.transport.call(f"hybrid sub-queries on {self.transport.alias}"):
            bm25, knn = (parse_hits(msearch_item(response)) for response in self.transport.msearch(bodies, rider))
        return bm25, knn
