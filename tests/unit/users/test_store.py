"""The comparison page's user list: off by default, ids or masked labels with tokens only when asked for."""

from __future__ import annotations

import pytest

from tbhns_opensearch.api.users import TOKEN_PREFIX, UserTokens, mask_user_id
from tbhns_opensearch.errors import SearchError


@pytest.mark.parametrize(
    ("user_id", "label"),
    [
        ("alice.smith@example.com", "al***@***.com"),
        ("bob@mail.example.co.uk", "b***@***.uk"),
        ("x@y", "***@***"),
        ("u42", "u***"),
        ("ab", "***"),
        ("customer-000123", "cu***"),
    ],
)
def test_masked_labels_keep_at_most_a_third_of_the_name_and_the_top_level_domain(user_id: str, label: str) -> None:
    assert mask_user_id(user_id) == label


def test_tokens_are_opaque_and_map_back_only_in_the_server_that_made_them() -> None:
    tokens = UserTokens()
    token = tokens.token("alice@example.com")
    assert token.startswith(TOKEN_PREFIX) and "alice" not in token and token == tokens.token("alice@example.com")
    assert tokens.user_id(token) == "alice@example.com"
    assert tokens.user_id("bob") == "bob"  # a typed user id is taken as it is
    assert UserTokens().token("alice@example.com") != token  # a key of its own per server
    with pytest.raises(SearchError, match="reload the page"):
        UserTokens().user_id(token)
