"""Gateways in processes of their own, for the cascade's tests: certificates and ``serve``.

``CertificateAuthority`` makes a CA and certificates it signs, at test time, with the
``cryptography`` package (nothing is committed). ``GatewayProcess`` runs
``deltagate serve`` from a configuration the test writes, over HTTP or HTTPS, and can
be stopped and started again on the same port (a province restarting).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import JWT_SECRET, MASK_SECRET
from tests.gateway.edge.test_cli import free_port

#: What a CA's key may do: sign certificates and revocation lists.
_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


class CertificateAuthority:
    """A CA of its own, writing PEM files into ``folder``.

    ::

        ca = CertificateAuthority(tmp_path, "province CA")
        cert, key = ca.issue("server", server=True)   # for 127.0.0.1 and localhost
        ca.path                                      # the CA certificate, to trust
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.path = self._write(f"{self._slug(name)}.pem", self.certificate)

    def issue(self, name: str, *, server: bool = False) -> tuple[Path, Path]:
        """A certificate for ``name`` signed by this CA and its key: the paths of both.

        A server certificate names 127.0.0.1 and localhost; a client one is for clients.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        slug = f"{self._slug(self.name)}-{self._slug(name)}"
        cert_path = self._write(f"{slug}.pem", certificate)
        key_path = self.folder / f"{slug}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    def _write(self, filename: str, certificate: x509.Certificate) -> Path:
        path = self.folder / filename
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return path

    @staticmethod
    def _slug(name: str) -> str:
        return "-".join(name.lower().split())


class GatewayProcess:
    """``deltagate serve --config`` in a process of its own, stopped and started at will.

    Args:
        config: the configuration file's text, without ``[gateway]`` (added here with
            the port).
        folder: where the file goes (paths in it are relative to it).
        env: variables beside the test secrets (DELTAGATE_JWT_SECRET, _MASK_SECRET).
        probe: the SSL context the readiness of an HTTPS server is probed with.
        port: the port to serve on (default: a free one), when others must know it first.
    """

    def __init__(
        self,
        config: str,
        folder: Path,
        env: dict[str, str] | None = None,
        *,
        probe: ssl.SSLContext | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        scheme = "https" if probe is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.url = f"{self.base}/graphql"
        self.path = folder / "gateway.toml"
        self.path.write_text(
            f'[gateway]\nhost = "127.0.0.1"\nport = {self.port}\n{config}', encoding="utf-8"
        )
        self.env = {
            **os.environ,
            "DELTAGATE_JWT_SECRET": JWT_SECRET,
            "DELTAGATE_MASK_SECRET": MASK_SECRET,
            **(env or {}),
        }
        self.probe = probe
        self.output = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the server and wait until ``/healthz`` answers; the seconds it took."""
        started = time.monotonic()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gateway.edge.cli", "serve", "--config", str(self.path)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = started + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"deltagate serve exited:\n{self.output}")
            try:
                answer = httpx.get(f"{self.base}/healthz", verify=self.probe or True, timeout=1)
                if answer.status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"deltagate serve did not answer within 30 s:\n{self.output}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, as an orchestrator would); idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            out, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate(timeout=5)
        self.output += out.decode(errors="replace")


@contextmanager
def running(*processes: GatewayProcess) -> Iterator[Sequence[GatewayProcess]]:
    """Start each process in turn; every one is stopped when the block ends, however."""
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client's SSL context trusting ``ca``, presenting ``cert`` if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def province_config(dsn: str, region: str, upper: str | None = None) -> str:
    """A provincial gateway's configuration: its own region's database only, and the delta
    gateway at ``upper`` (its ``/graphql``) above it if given, token in
    ``DELTAGATE_UPPER_TOKEN``."""
    text = f"[limits]\nrate_limits = false\n[sources.{region}]\ndsn = {json.dumps(dsn)}\n"
    if upper is not None:
        text += (
            f'[upper]\nurl = {json.dumps(upper)}\ntoken_env = "DELTAGATE_UPPER_TOKEN"\n'
            f'code = "YRD"\nmatter = "JH-HUKOU-MIGRATION"\n'
        )
    return text


def top_config(provinces: dict[str, GatewayProcess], matter: str | None = None) -> str:
    """The delta gateway's configuration over provincial gateways, with every default of a
    ``gateway`` source (its timeout and breaker); tokens in ``DELTAGATE_UPSTREAM_TOKEN_<R>``."""
    lines = ["[limits]", "rate_limits = false"]
    for region, process in provinces.items():
        lines += [
            f"[sources.{region}]",
            'kind = "gateway"',
            f"url = {json.dumps(process.url)}",
            f'token_env = "DELTAGATE_UPSTREAM_TOKEN_{region}"',
        ]
        if matter:
            lines.append(f"matter = {json.dumps(matter)}")
    return "\n".join(lines) + "\n"
