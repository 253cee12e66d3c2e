"""HTTP search API (FastAPI): `create_app(ServeSettings(...))`, served by `tbhns serve`."""

from tbhns_opensearch.api.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
