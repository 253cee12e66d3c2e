"""AWS SigV4 for managed clusters (Amazon OpenSearch Service and Serverless), without a cluster or the network:
fixed credentials and a stopped clock; every signature the client sends is recomputed here from the SigV4
specification (canonical request -> string to sign -> signing key -> signature) with hashlib and hmac alone."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import hmac
import json
import sys
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.auth
import pytest
from opensearchpy import Urllib3AWSV4SignerAuth
from urllib3 import HTTPHeaderDict

from tbhns_opensearch.cluster import make_client, resolve_cluster
from tbhns_opensearch.config import ClusterAuth, OpenSearchConfig, aws_endpoint
from tbhns_opensearch.errors import ConfigError

ACCESS_KEY = "AKIDEXAMPLE"  # the key pair of AWS's own SigV4 examples
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLETOKEN"
NOW = datetime.datetime(2026, 3, 14, 15, 9, 26)  # UTC
DOMAIN = "https://search-shop-abc123.eu-west-1.es.amazonaws.com"
COLLECTION = "https://k7x2q9.us-east-1.aoss.amazonaws.com"
FIXED_SIGNATURES = {  # POST /products/_search?size=3&_source=false to DOMAIN at NOW, the body not gzipped
    "host;x-amz-content-sha256;x-amz-date": "46818b80123dc220e872111136398f44d60cc35f93a85d31d5c0a6a9fe013861",
    "host;x-amz-date": "b33237bfe081a9dbb22bce4718f60e01b1368c639ae6f2760e6560d31e04bd02",  # opensearch-py < 3
}
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


# --- the SigV4 specification, by hand --------------------------------------------------------------------------
def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sigv4_authorization(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    secret: str = SECRET_KEY,
    access_key: str = ACCESS_KEY,
) -> str:
    """The Authorization header AWS expects for a request whose signed `headers` (lowercase names, x-amz-date
    among them) are given, following https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html."""
    parts = urlsplit(url)
    timestamp = headers["x-amz-date"]
    canonical_query = "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
        for key, value in sorted(parse_qsl(parts.query, keep_blank_values=True))
    )
    names = sorted(headers)
    canonical_request = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            canonical_query,
            *(f"{name}:{' '.join(headers[name].split())}" for name in names),
            "",
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = ("AWS4" + secret).encode("utf-8")
    for part in (timestamp[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"


def test_the_hand_written_signer_gives_the_aws_test_suite_answer() -> None:
    """AWS's SigV4 test suite, case get-vanilla: the recomputation below is the specification, not botocore."""
    authorization = sigv4_authorization(
        "GET",
        "https://example.amazonaws.com/",
        {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"},
        b"",
        "us-east-1",
        "service",
    )
    assert authorization.endswith("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


# --- fixtures: the process environment botocore reads, its clock, and a connection that records --------------
@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """Only the fixed key pair in botocore's chain: no profile, shared file, container or instance role (no
    instance-metadata request leaves the machine)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return monkeypatch


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore.auth's clock stopped at NOW. botocore 1.40 and later ask `get_current_datetime` (imported into
    botocore.auth); earlier ones call `datetime.datetime.utcnow()` or `.now(timezone.utc)` on botocore.auth's
    `datetime` module. Both routes are stopped here, and the tests check X-Amz-Date, so a botocore that reads
    the time some third way fails them instead of passing by luck."""

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
            return NOW if tz is None else NOW.replace(tzinfo=datetime.UTC).astimezone(tz)

        @classmethod
        def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
            return NOW

    module = SimpleNamespace(**{**vars(datetime), "datetime": Frozen})
    monkeypatch.setattr(botocore.auth, "datetime", module)
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda remove_tzinfo=True: NOW if remove_tzinfo else NOW.replace(tzinfo=datetime.UTC),
        raising=False,
    )


class RecordingPool:
    """Stands in for the connection's urllib3 pool: keeps each request as it would go on the wire, answers 200."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes, dict[str, str]]] = []

    def urlopen(self, method: str, url: str, body: bytes | None, headers: Any = None, **_: Any) -> Any:
        self.sent.append((method, url, body or b"", {name.lower(): value for name, value in headers.items()}))
        answer = {"took": 1, "timed_out": False, "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}
        return SimpleNamespace(
            status=200, data=json.dumps(answer).encode(), headers=HTTPHeaderDict({"content-type": "application/json"})
        )

    def close(self) -> None:
        pass


def sigv4_env(url: str = DOMAIN, **extra: str) -> dict[str, str]:
    return {"OPENSEARCH_URL": url, "OPENSEARCH_AUTH": "sigv4", **extra}


def send_search(config: OpenSearchConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, bytes, dict[str, str]]:
    """One search through the whole client (transport, serializer, gzip, signer), caught before the socket."""
    client = make_client(config)
    pool = RecordingPool()
    monkeypatch.setattr(client.transport.get_connection(), "pool", pool)
    client.search(
        index="products", body={"query": {"match": {"title": "desk lamp"}}}, params={"size": 3, "_source": "false"}
    )
    (request,) = pool.sent
    return request


# --- signing --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "extra", "region", "service", "token"),
    [
        (DOMAIN, {"OPENSEARCH_HTTP_COMPRESS": "false"}, "eu-west-1", "es", False),
        (DOMAIN, {}, "eu-west-1", "es", False),  # remote host: the body goes gzipped, and is signed so
        (COLLECTION, {}, "us-east-1", "aoss", False),  # Serverless: service and region from the endpoint
        (
            "https://search.shop.example",
            {"AWS_REGION": "ap-south-1", "OPENSEARCH_AWS_SERVICE": "aoss"},
            "ap-south-1",
            "aoss",
            False,
        ),
        (DOMAIN, {"OPENSEARCH_HTTP_COMPRESS": "false"}, "eu-west-1", "es", True),  # temporary credentials
    ],
)
def test_every_request_carries_the_signature_aws_computes(
    aws_env: pytest.MonkeyPatch,
    frozen_clock: None,
    url: str,
    extra: dict[str, str],
    region: str,
    service: str,
    token: bool,
) -> None:
    if token:
        aws_env.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    method, path, body, headers = send_search(OpenSearchConfig.from_env(sigv4_env(url, **extra)), aws_env)

    assert (method, urlsplit(path).path) == ("POST", "/products/_search")
    sent = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
    assert json.loads(sent) == {"query": {"match": {"title": "desk lamp"}}}
    assert headers["x-amz-date"] == "20260314T150926Z"
    payload_hash = headers.get("x-amz-content-sha256")  # opensearch-py 3 signs it always, 2.x for aoss only
    assert payload_hash == hashlib.sha256(body).hexdigest() or (payload_hash is None and service == "es")
    signed = (
        {"host": urlsplit(url).hostname or "", "x-amz-date": headers["x-amz-date"]}  # Host as urllib3 sends it
        | ({"x-amz-content-sha256": payload_hash} if payload_hash else {})
        | ({"x-amz-security-token": SESSION_TOKEN} if token else {})
    )
    assert headers.get("x-amz-security-token") == (SESSION_TOKEN if token else None)
    assert headers["authorization"] == sigv4_authorization(method, path, signed, body, region, service)
    assert SECRET_KEY not in repr(headers)


def test_the_signature_for_the_fixed_request_is_the_expected_one(
    aws_env: pytest.MonkeyPatch, frozen_clock: None
) -> None:
    """The same request, fixed key and fixed clock: one known signature, so a change in what is signed shows."""
    config = OpenSearchConfig.from_env(sigv4_env(OPENSEARCH_HTTP_COMPRESS="false"))
    *_, headers = send_search(config, aws_env)
    names = "host;x-amz-content-sha256;x-amz-date" if "x-amz-content-sha256" in headers else "host;x-amz-date"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260314/eu-west-1/es/aws4_request, "
        f"SignedHeaders={names}, Signature={FIXED_SIGNATURES[names]}"
    )


def test_the_client_every_command_makes_signs_with_opensearch_pys_signer(aws_env: pytest.MonkeyPatch) -> None:
    """What every command does (`cli.app.cluster_for`: `resolve_cluster(OpenSearchConfig.from_env())`, then
    `make_client`) carries the signer: region and service from the endpoint, nothing basic beside it, and neither
    the key nor the secret in what is logged or shown."""
    for name, value in sigv4_env().items():
        aws_env.setenv(name, value)
    for name in ("OPENSEARCH_USER", "OPENSEARCH_PASSWORD", "OPENSEARCH_AWS_REGION", "OPENSEARCH_AWS_SERVICE"):
        aws_env.delenv(name, raising=False)
    config = resolve_cluster(OpenSearchConfig.from_env(), start=False)
    assert (config.auth, config.aws_region, config.aws_service) == (ClusterAuth.SIGV4, "eu-west-1", "es")
    client = make_client(config)
    connection = client.transport.get_connection()
    assert isinstance(connection.http_auth, Urllib3AWSV4SignerAuth)
    assert (connection.http_auth.signer.region, connection.http_auth.service) == ("eu-west-1", "es")
    assert "authorization" not in {name.lower() for name in connection.headers}  # no basic header beside it
    shown = " ".join([repr(config), config.redacted_url(), repr(client), repr(connection), repr(connection.http_auth)])
    assert ACCESS_KEY not in shown and SECRET_KEY not in shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (DOMAIN, ("eu-west-1", "es")),
        ("https://vpc-shop-abc123.ap-southeast-2.es.amazonaws.com:443", ("ap-southeast-2", "es")),
        (COLLECTION, ("us-east-1", "aoss")),
        ("https://search.shop.example", None),
        ("https://es.amazonaws.com.evil.example", None),
    ],
)
def test_an_aws_endpoint_names_its_region_and_service(url: str, expected: tuple[str, str] | None) -> None:
    assert aws_endpoint(url) == expected


def test_an_explicit_region_outranks_the_endpoints_and_the_endpoints_outranks_the_aws_default() -> None:
    assert OpenSearchConfig.from_env(sigv4_env(OPENSEARCH_AWS_REGION="us-west-2")).aws_region == "us-west-2"
    assert OpenSearchConfig.from_env(sigv4_env(AWS_REGION="us-west-2")).aws_region == "eu-west-1"
    custom = "https://search.shop.example"
    assert OpenSearchConfig.from_env(sigv4_env(custom, AWS_DEFAULT_REGION="sa-east-1")).aws_region == "sa-east-1"
    assert OpenSearchConfig.from_env({"OPENSEARCH_URL": custom}).auth is ClusterAuth.BASIC  # unset: as before


# --- refusals: one line naming the fix ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENSEARCH_AUTH": "iam"}, "OPENSEARCH_AUTH must be one of basic, sigv4, got 'iam'"),
        ({"OPENSEARCH_AUTH": "sigv4"}, "sigv4 needs OPENSEARCH_URL"),
        (sigv4_env("https://search.shop.example"), "needs the cluster's AWS region: set OPENSEARCH_AWS_REGION"),
        (sigv4_env(OPENSEARCH_USER="admin", OPENSEARCH_PASSWORD="pw"), "unset OPENSEARCH_USER and OPENSEARCH_PASSWORD"),
        (sigv4_env("https://admin:pw@search.shop.example", AWS_REGION="eu-west-1"), "user:password@ out of"),
        (sigv4_env(OPENSEARCH_AWS_SERVICE="opensearch"), "must be es .* or aoss .*, got 'opensearch'"),
    ],
)
def test_a_sigv4_setting_that_cannot_work_is_refused_with_the_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        OpenSearchConfig.from_env(env)
    assert "\n" not in str(caught.value) and "pw" not in str(caught.value).replace("password", "")


def test_sigv4_without_botocore_names_the_extra_to_install(
    aws_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.session", None)  # import botocore.session: ImportError
    with pytest.raises(
        ConfigError, match=r"needs botocore, which is not installed: pip install 'tbhns-opensearch\[aws\]'"
    ):
        make_client(OpenSearchConfig.from_env(sigv4_env()))


def test_sigv4_without_credentials_says_where_they_come_from(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="found no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        make_client(OpenSearchConfig.from_env(sigv4_env()))


@pytest.mark.parametrize(
    ("missing", "other", "message"),
    [
        ("AWS_SECRET_ACCESS_KEY", ACCESS_KEY, "could not read the AWS credentials: .*AWS_SECRET_ACCESS_KEY"),
        ("AWS_ACCESS_KEY_ID", SECRET_KEY, "found no AWS credentials"),  # botocore ignores a lone secret
    ],
)
def test_half_a_key_pair_is_refused_without_showing_the_other_half(
    aws_env: pytest.MonkeyPatch, missing: str, other: str, message: str
) -> None:
    aws_env.delenv(missing)
    with pytest.raises(ConfigError, match=message) as caught:
        make_client(OpenSearchConfig.from_env(sigv4_env()))
    assert other not in str(caught.value)


def test_a_missing_profile_is_refused_with_its_name(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    aws_env.setenv("AWS_PROFILE", "shop-prod")
    with pytest.raises(ConfigError, match="could not read the AWS credentials: .*shop-prod"):
        make_client(OpenSearchConfig.from_env(sigv4_env()))
