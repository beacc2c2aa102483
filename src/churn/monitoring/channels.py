"""Sending one message: to a Slack-compatible incoming webhook (a JSON POST of `text` and `blocks`; success
is HTTP 200 with the body "ok") or as an e-mail over SMTP (standard library `smtplib` and `email`).

A failure raises `SendFailed`, which says whether trying again may help (a refused connection, a timeout,
HTTP 5xx or 429, an SMTP 4xx answer) or not (any other HTTP answer, an SMTP 5xx answer: the message or the
address is wrong). Server settings come from the environment, never from the config (they are secrets);
`smtp_settings` names a missing variable.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from churn.errors import ChurnError

WEBHOOK_ENV = "CHURN_WEBHOOK_URL"
SMTP_ENV = {"host": "CHURN_SMTP_HOST", "port": "CHURN_SMTP_PORT", "tls": "CHURN_SMTP_TLS",
            "sender": "CHURN_SMTP_SENDER", "user": "CHURN_SMTP_USER", "password": "CHURN_SMTP_PASSWORD"}
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is capped (the run should finish)


class SendFailed(Exception):
    """One try at sending failed; `retry` says whether another try may succeed, `wait` how long the server
    asked us to wait first (HTTP Retry-After), if it did."""

    def __init__(self, message: str, retry: bool, wait: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.wait = wait


def where(url: str) -> str:
    """A webhook URL without its secret path: scheme, host and port only (for messages and logs)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def webhook_url(env: Mapping[str, str]) -> str:
    """The incoming-webhook URL from CHURN_WEBHOOK_URL (a ChurnError when unset or not http(s))."""
    url = env.get(WEBHOOK_ENV, "").strip()
    if not url:
        raise ChurnError(f"monitoring.delivery.channels lists webhook but {WEBHOOK_ENV} is not set: set it to "
                         "the incoming webhook's URL")
    if urlsplit(url).scheme not in ("http", "https"):
        raise ChurnError(f"{WEBHOOK_ENV} must be an http(s) URL, not {url[:20]!r}...")
    return url


def post_webhook(url: str, payload: dict, timeout: float) -> None:
    """POST `payload` as JSON; returns when the server answered HTTP 200 "ok"."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) checked above
            status, body = resp.status, resp.read(2000).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode("utf-8", "replace").strip()
        wait = exc.headers.get("Retry-After") if exc.headers else None
        raise SendFailed(f"{where(url)} answered HTTP {exc.code} {body!r}", exc.code >= 500 or exc.code == 429,
                         min(float(wait), MAX_RETRY_AFTER) if wait and wait.isdigit() else None) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SendFailed(f"cannot reach {where(url)} ({reason})", True) from None
    if status != 200 or body != "ok":
        raise SendFailed(f"{where(url)} answered HTTP {status} {body[:200]!r}, not 'ok'", False)


@dataclass(frozen=True)
class SmtpSettings:
    """An SMTP server and the login to it, from the environment."""

    host: str
    port: int
    tls: str  # starttls, ssl or none
    sender: str
    user: str | None = None
    password: str | None = None


def smtp_settings(env: Mapping[str, str]) -> SmtpSettings:
    """The SMTP settings from CHURN_SMTP_* (a ChurnError naming what is missing or wrong)."""
    get = {k: env.get(v, "").strip() for k, v in SMTP_ENV.items()}
    missing = [SMTP_ENV[k] for k in ("host", "sender") if not get[k]]
    if missing:
        raise ChurnError(f"monitoring.delivery.channels lists email but {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set")
    tls = (get["tls"] or "starttls").lower()
    if tls not in DEFAULT_PORTS:
        raise ChurnError(f"{SMTP_ENV['tls']} must be starttls, ssl or none, not {get['tls']!r}")
    if get["port"] and not get["port"].isdigit():
        raise ChurnError(f"{SMTP_ENV['port']} must be a port number, not {get['port']!r}")
    return SmtpSettings(get["host"], int(get["port"] or DEFAULT_PORTS[tls]), tls, get["sender"],
                        get["user"] or None, env.get(SMTP_ENV["password"]) or None)


def send_mail(settings: SmtpSettings, to: list[str], subject: str, body: str, timeout: float) -> None:
    """Send one plain-text e-mail to `to`; returns when the server accepted it."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = settings.sender, ", ".join(to), subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    msg.set_content(body)
    server = f"{settings.host}:{settings.port}"
    try:
        smtp = (smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=ssl.create_default_context())
                if settings.tls == "ssl" else smtplib.SMTP(settings.host, settings.port, timeout=timeout))
        with smtp:
            if settings.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password or "")
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [c for c, _ in exc.recipients.values()]
        raise SendFailed(f"{server} refused the recipients {sorted(exc.recipients)}", all(400 <= c < 500 for c in codes)) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise SendFailed(f"{server} answered {exc.smtp_code} {text[:200]}", 400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendFailed(f"cannot reach {server} ({exc})", True) from None
