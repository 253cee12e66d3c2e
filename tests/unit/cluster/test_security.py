"""Certificates and credentials for `tbhns opensearch start --secure`, without a node."""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding

from tbhns_opensearch.cluster.security import NODE_DN, read_credentials, secure_config


def _plugin_config(tmp_path: Path) -> Path:
    plugin = tmp_path / "plugin-config"
    plugin.mkdir()
    (plugin / "roles_mapping.yml").write_text("_meta:\n  type: rolesmapping\n")
    (plugin / "internal_users.yml").write_text("admin:\n  hash: the-demo-hash\n")
    return plugin


def test_a_ca_signed_node_certificate_private_keys_and_a_hashed_password(tmp_path: Path) -> None:
    config, node = tmp_path / "config", tmp_path / "node"
    config.mkdir(), node.mkdir()
    credentials, settings = secure_config(config, node, _plugin_config(tmp_path), "https://127.0.0.1:9281")
    certs = config / "certs"
    ca = x509.load_pem_x509_certificate((certs / "root-ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((certs / "node.pem").read_bytes())
    ca.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
    )
    assert cert.subject.rfc4514_string() == NODE_DN
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    for private in (certs / "node-key.pem", certs / "admin-key.pem", node / "credentials.json"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert (certs / "node-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    users = (config / "opensearch-security" / "internal_users.yml").read_text()
    assert "the-demo-hash" not in users and credentials.password not in users
    digest = users.split('hash: "')[1].split('"')[0]
    assert bcrypt.checkpw(credentials.password.encode(), digest.encode())
    assert (config / "opensearch-security" / "roles_mapping.yml").exists()
    assert settings["plugins.security.ssl.http.enabled"] is True
    assert credentials.exports().splitlines()[0] == "export OPENSEARCH_URL=https://127.0.0.1:9281"


def test_a_restart_reuses_certificates_and_password(tmp_path: Path) -> None:
    config, node = tmp_path / "config", tmp_path / "node"
    config.mkdir(), node.mkdir()
    first, _ = secure_config(config, node, _plugin_config(tmp_path), "https://127.0.0.1:9281")
    ca = (config / "certs" / "root-ca.pem").read_bytes()
    second, _ = secure_config(config, node, tmp_path / "plugin-config", "https://127.0.0.1:9281")
    assert second == first == read_credentials(node)
    assert (config / "certs" / "root-ca.pem").read_bytes() == ca
