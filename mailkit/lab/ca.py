"""A small certificate authority for the lab: it issues the mail host's certificate, lab clients trust it.

For a real server, use a certificate from an ACME client (Let's Encrypt) instead; only the paths change.

>>> import tempfile
>>> ca = CertificateAuthority(Path(tempfile.mkdtemp()))
>>> cert, key = ca.issue("mail.example.org")
>>> cert.startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE KEY" in key
True
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailkit.core.local import write_private
from mailkit.core.values import Hostname

CA_NAME = "mailkit lab CA"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A CA kept in ``directory`` (``ca.key`` mode 0600, ``ca.crt``), created on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    def ensure(self) -> bytes:
        """The CA certificate (PEM), making the CA if it does not exist yet."""
        if self.cert_path.exists() and self.key_path.exists():
            return self.cert_path.read_bytes()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(self.key_path, _pem_key(key))
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self.cert_path.read_bytes()

    def certificate(self, hostname: str, *, renew_within_days: int = 30) -> tuple[bytes, bytes]:
        """The certificate and key for ``hostname``, issued once and kept (so applying it twice is no change).

        A new one is issued when the kept one expires within ``renew_within_days``.
        """
        name = Hostname(hostname, field="certificate host name")
        issued = self.directory / "issued"
        cert_path, key_path = issued / f"{name}.pem", issued / f"{name}.key"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc - _now() > datetime.timedelta(days=renew_within_days):
                return cert_path.read_bytes(), key_path.read_bytes()
        chain, key = self.issue(name)
        issued.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(key_path, key)
        cert_path.write_bytes(chain)
        return chain, key

    def issue(
        self, hostname: str, *, days: int = 365, not_before: datetime.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """A new server certificate for ``hostname`` (PEM with the CA appended) and its private key (PEM), valid
        ``days`` from ``not_before`` (default: now; an earlier start makes the expired certificate tests need)."""
        start = not_before or _now() - datetime.timedelta(minutes=5)
        name = Hostname(hostname, field="certificate host name")
        ca_pem = self.ensure()
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
        return chain, _pem_key(key)
