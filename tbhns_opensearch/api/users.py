"""Which users the comparison page may list (`tbhns serve --list-users`), and masked labels for them.

User ids are often e-mail addresses and every client of `/compare/options` sees the list, so it is off by
default. `ids` lists the ids as they are (for trusted networks); `masked` lists a label such as
"al***@***.com" with an opaque token, which the server maps back to the id when a search sends it as `user_id`.
A user id typed by hand works in every case: listing is the only thing the setting changes.

Example:
    >>> tokens = UserTokens()
    >>> tokens.user_id(tokens.token("alice@example.com"))
    'alice@example.com'
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from tbhns_opensearch.errors import SearchError

USER_LISTS = ("off", "ids", "masked")
"""What `/compare/options` lists: no users, their ids, or masked labels with tokens."""
TOKEN_PREFIX = "user~"


def mask_user_id(user_id: str) -> str:
    """A label that keeps at most a third (and at most 2 characters) of the name, and an e-mail's top-level domain.

    Example:
        >>> mask_user_id("alice.smith@example.com"), mask_user_id("u42")
        ('al***@***.com', 'u***')
    """
    name, at, domain = user_id.partition("@")
    label = name[: min(2, len(name) // 3)] + "***"
    if at:
        label += "@***" + (f".{domain.rsplit('.', 1)[1]}" if "." in domain else "")
    return label


class UserTokens:
    """Opaque tokens for listed user ids: an HMAC of the id under a key made when the server starts, remembered
    so that a search sending the token searches as that user."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._ids: dict[str, str] = {}

    def token(self, user_id: str) -> str:
        """The token that stands for `user_id` in this server."""
        token = TOKEN_PREFIX + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
        self._ids[token] = user_id
        return token

    def user_id(self, given: str) -> str:
        """The user id behind a token of this server; any other value is a user id as it is."""
        if not given.startswith(TOKEN_PREFIX):
            return given
        if given not in self._ids:
            raise SearchError(
                f"user token {given[:16]}... is not one this server listed (it restarted since); "
                "reload the page and pick the user again"
            )
        return self._ids[given]
