"""The product transport without a cluster: how the cluster's refusals reach the user."""

from __future__ import annotations

import pytest
from opensearchpy.exceptions import TransportError

from tbhns_opensearch.config import OpenSearchConfig
from tbhns_opensearch.errors import SearchError
from tbhns_opensearch.query.transport import ProductTransport

SIGNED = OpenSearchConfig(url="https://search-shop.eu-west-1.es.amazonaws.com", auth="sigv4", aws_region="eu-west-1")


@pytest.mark.parametrize(
    ("config", "check"),
    [
        (OpenSearchConfig(url="http://localhost:9200"), "check OPENSEARCH_USER and OPENSEARCH_PASSWORD"),
        (SIGNED, "check that the AWS identity botocore found may call this cluster"),
    ],
)
def test_a_refused_request_names_what_to_check_for_its_way_of_authenticating(
    config: OpenSearchConfig, check: str
) -> None:
    transport = ProductTransport(config, "products")
    with pytest.raises(SearchError, match=rf"search on products failed \(403\): security_exception; {check}"):
        with transport.call("search on products"):
            raise TransportError(403, "security_exception", {})
    if config is SIGNED:
        with pytest.raises(SearchError) as refused, transport.call("search on products"):
            raise TransportError(403, "security_exception", {})
        assert "OPENSEARCH_PASSWORD" not in str(refused.value)
