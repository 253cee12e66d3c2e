"""Search the product alias: encode the query, build the request for its mode, send it, parse typed results.

The public names a user needs; the modules below hold one concern each: `builders` (request bodies and filters),
`encoding` (the query encoder and its cache), `fusion` (hybrid fusion and pipelines), `results` (request, hits,
responses), `transport` (one alias's requests and errors), `profile_reading` (users' profiles for personalized
searches), `hybrid` (server and client hybrid pages) and `service` (`SearchClient`: validation and dispatch).
"""

from tbhns_opensearch.query.builders import Filters, parse_filters
from tbhns_opensearch.query.fusion import HybridConfig
from tbhns_opensearch.query.results import MODES, ClusterHealth, SearchHit, SearchResponse
from tbhns_opensearch.query.service import SearchClient

__all__ = [
    "MODES",
    "ClusterHealth",
    "Filters",
    "HybridConfig",
    "SearchClient",
    "SearchHit",
    "SearchResponse",
    "parse_filters",
]
