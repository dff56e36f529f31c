"""Clients that connect to a server's address but speak TLS (SNI, certificate check) for a host
name, as a client would once the DNS records of `deploy_psn dns` are published; the trust of an
installation. Used by `verify` and the administration client (api_client)."""

from __future__ import annotations

import http.client
import imaplib
import smtplib
import socket
import ssl
from pathlib import Path

TIMEOUT = 30
# The PSN API's global administrator (passwords.psnapi_admin_user).
API_ADMIN = "psnapi"


def tls_context(cert_dir: Path) -> ssl.SSLContext:
    """The system's trust store plus the installation's `ca.crt` (self-signed or private CA)."""
    context = ssl.create_default_context()
    ca = cert_dir / "ca.crt"
    if ca.is_file():
        context.load_verify_locations(cafile=ca)
    return context


class PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to `name` at `address` (empty: `name` resolved as usual)."""

    def __init__(
        self,
        name: str,
        address: str,
        context: ssl.SSLContext,
        port: int = 443,
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, port, context=context, timeout=timeout or TIMEOUT)
        self._address = address

    def connect(self) -> None:
        if not self._address:
            return super().connect()
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class PinnedSMTP(smtplib.SMTP):
    def __init__(self, name: str, address: str, port: int) -> None:
        self._address = address
        super().__init__(name, port, timeout=TIMEOUT, local_hostname="psn-verify.invalid")

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout)


class PinnedIMAP(imaplib.IMAP4_SSL):
    def __init__(self, name: str, address: str, context: ssl.SSLContext) -> None:
        self._address = address
        super().__init__(name, 993, ssl_context=context, timeout=TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
