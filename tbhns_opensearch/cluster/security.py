"""TLS and basic auth for the self-started node (`tbhns opensearch start --secure`).

On first start, in the node's config folder: a CA, a node certificate (SAN localhost and 127.0.0.1) and an
admin certificate, all made here with `cryptography` (2048-bit RSA, 3 years, PKCS#8 keys as OpenSearch wants
them, 0600); an `admin` password from `secrets`, stored bcrypt-hashed in the security plugin's
`internal_users.yml` and in clear only in `<node dir>/credentials.json` (0600) for the user to export. Later
starts reuse all of it. Nothing secret is checked in or printed twice.

Example:
    >>> credentials, settings = secure_config(config_dir, node_dir, plugin_config, url)  # doctest: +SKIP
    >>> print(Credentials("https://127.0.0.1:9200", "admin", "pw", "/ca.pem").exports().splitlines()[0])
    export OPENSEARCH_URL=https://127.0.0.1:9200
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CREDENTIALS_FILE = "credentials.json"
ADMIN_USER = "admin"
NODE_DN = "CN=tbhns-node,O=tbhns"
ADMIN_DN = "CN=tbhns-admin,O=tbhns"
VALID_DAYS = 3 * 365


@dataclass(frozen=True)
class Credentials:
    """How a client reaches the secured node: the OPENSEARCH_* settings to export."""

    url: str
    user: str
    password: str
    ca_certs: str

    def exports(self) -> str:
        """Shell lines that point every tbhns command at the node."""
        return "\n".join(
            f"export {name}={value}"
            for name, value in (
                ("OPENSEARCH_URL", self.url),
                ("OPENSEARCH_USER", self.user),
                ("OPENSEARCH_PASSWORD", self.password),
                ("OPENSEARCH_CA_CERTS", self.ca_certs),
            )
        )


def read_credentials(node_dir: Path) -> Credentials | None:
    """The credentials `secure_config` stored for the node in `node_dir`, or None (an unsecured node)."""
    path = node_dir / CREDENTIALS_FILE
    return Credentials(**json.loads(path.read_text())) if path.exists() else None


def secure_config(
    config_dir: Path, node_dir: Path, plugin_config: Path, url: str
) -> tuple[Credentials, dict[str, Any]]:
    """Certificates, security-plugin files and credentials for the node (made once, reused after); returns the
    credentials and the opensearch.yml settings that turn TLS and authentication on."""
    certs = config_dir / "certs"
    if not (certs / "node-key.pem").exists():
        _write_certificates(certs)
    credentials = read_credentials(node_dir)
    if credentials is None or credentials.url != url:
        password = credentials.password if credentials else secrets.token_urlsafe(24)
        credentials = Credentials(url, ADMIN_USER, password, str(certs / "root-ca.pem"))
        _write_private(node_dir / CREDENTIALS_FILE, json.dumps(asdict(credentials), indent=2))
    security_dir = config_dir / "opensearch-security"
    shutil.copytree(plugin_config, security_dir, dirs_exist_ok=True)
    digest = bcrypt.hashpw(credentials.password.encode(), bcrypt.gensalt(12)).decode()
    (security_dir / "internal_users.yml").write_text(
        '_meta:\n  type: "internalusers"\n  config_version: 2\n'
        f'{ADMIN_USER}:\n  hash: "{digest}"\n  reserved: true\n  backend_roles:\n  - "admin"\n'
        '  description: "tbhns admin (password in credentials.json)"\n'
    )
    tls = {
        "pemcert_filepath": "certs/node.pem",
        "pemkey_filepath": "certs/node-key.pem",
        "pemtrustedcas_filepath": "certs/root-ca.pem",
    }
    settings: dict[str, Any] = {
        **{f"plugins.security.ssl.transport.{key}": value for key, value in tls.items()},
        **{f"plugins.security.ssl.http.{key}": value for key, value in tls.items()},
        "plugins.security.ssl.http.enabled": True,
        "plugins.security.ssl.transport.enforce_hostname_verification": False,
        "plugins.security.allow_default_init_securityindex": True,
        "plugins.security.authcz.admin_dn": [ADMIN_DN],
        "plugins.security.nodes_dn": [NODE_DN],
        "plugins.security.restapi.roles_enabled": ["all_access"],
    }
    return credentials, settings


def _write_certificates(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tbhns"),
            x509.NameAttribute(NameOID.COMMON_NAME, "tbhns local CA"),
        ]
    )
    ca = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(directory / "root-ca.pem", ca.public_bytes(serialization.Encoding.PEM).decode(), mode=0o644)
    for stem, dn, san in (("node", NODE_DN, True), ("admin", ADMIN_DN, False)):
        key = _key()
        builder = _builder(x509.Name.from_rfc4514_string(dn), ca_name, key)
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).sign(
            ca_key, hashes.SHA256()
        )
        _write_private(directory / f"{stem}.pem", cert.public_bytes(serialization.Encoding.PEM).decode(), mode=0o644)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(directory / f"{stem}-key.pem", pkcs8.decode())


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to a file created with `mode` (never world-readable in between)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
