"""How one delivery leaves the node: an HTTPS POST (company and alert webhooks) or an email.

Both block only their greenlet (the process is monkey-patched: sockets, DNS and smtplib are
cooperative) and both are bounded by one overall timeout, so a slow endpoint costs its own
worker that long and no more.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import gevent
import httpx

from wafleet.actors.outbound_url import Target

ERROR_BODY = 512  # bytes of a failed response kept as the delivery's last error


class AttemptFailed(Exception):
    """One attempt did not deliver; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def signature(secret: str, body: bytes) -> str:
    """``X-Wafleet-Signature``: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class HttpSender:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # a redirect could lead anywhere, a private address included
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
            headers={"User-Agent": "wafleet-webhooks/1"},
        )

    def close(self) -> None:
        self.client.close()

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> int:
        """POST to the checked addresses in turn (the next one only when a connection fails);
        returns the 2xx status or raises :class:`AttemptFailed`."""
        headers = dict(headers, Host=target.host_header)
        headers["Content-Type"] = "application/json"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        last = "no address"
        try:
            with gevent.Timeout(self.timeout, TimeoutError):
                for address in target.addresses:
                    try:
                        with self.client.stream(
                            "POST",
                            target.url_for(address),
                            content=body,
                            headers=headers,
                            extensions=extensions,
                        ) as response:
                            if 200 <= response.status_code < 300:
                                return response.status_code
                            excerpt = b""
                            for chunk in response.iter_bytes():
                                excerpt += chunk
                                if len(excerpt) >= ERROR_BODY:
                                    break
                            text = excerpt[:ERROR_BODY].decode("utf-8", "replace").strip()
                            raise AttemptFailed(
                                f"HTTP {response.status_code}{': ' + text if text else ''}",
                                response.status_code,
                            )
                    except httpx.ConnectError as exc:
                        last = f"cannot connect to {target.host} ({address}): {exc}"
        except TimeoutError:
            raise AttemptFailed(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        raise AttemptFailed(last)


@dataclass(frozen=True)
class PairingEmail:
    to: str
    company: str
    code: str
    expires_at: int  # ms

    def message(self, sender: str) -> EmailMessage:
        """The code, its expiry and the company's name: nothing else."""
        expires = datetime.fromtimestamp(self.expires_at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = self.to
        msg["Subject"] = f"WhatsApp pairing code for {self.company}"
        msg.set_content(f"Company: {self.company}\nPairing code: {self.code}\nExpires: {expires}\n")
        return msg


class SmtpSender:
    """``smtp://user:pass@host:port`` (STARTTLS whenever the server offers it) or ``smtps://``."""

    def __init__(self, url: str, sender: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSender({self.host}:{self.port})"

    def send(self, email: PairingEmail) -> None:
        context = ssl.create_default_context()
        try:
            with gevent.Timeout(self.timeout, TimeoutError):
                if self.implicit_tls:
                    smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                        self.host, self.port, timeout=self.timeout, context=context
                    )
                else:
                    smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                try:
                    smtp.ehlo()
                    if not self.implicit_tls and smtp.has_extn("starttls"):
                        smtp.starttls(context=context)
                        smtp.ehlo()
                    if self.user:
                        smtp.login(self.user, self.password or "")
                    smtp.send_message(email.message(self.sender))
                finally:
                    try:
                        smtp.quit()
                    except (smtplib.SMTPException, OSError):
                        smtp.close()
        except TimeoutError:
            raise AttemptFailed(f"the SMTP server did not answer within {self.timeout:g} s") from None
        except smtplib.SMTPResponseException as exc:
            raise AttemptFailed(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise AttemptFailed(f"SMTP: {type(exc).__name__}: {exc}") from None
