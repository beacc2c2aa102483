"""Delivering a run's messages (notifications.json: the risk-jump digests and the health breaches) to the
channels of `monitoring.delivery`, after the run folder is in place.

Each message is sent at most once per channel (and e-mail recipient list): the ledger (`churn.monitoring.
ledger`) records it as soon as the channel accepted it, and a rerun skips what it holds. A failed send is
tried again after `backoff_seconds`, doubled each time, up to `retries` more times, when trying again may
help; messages to one channel are at least `min_interval_seconds` apart. Whatever fails, the others are
still sent; then `DeliveryError` lists what failed and how to send it again (`churn notify --run DIR`).
The run folder is never changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churn.config import Config
from churn.errors import ChurnError
from churn.monitoring.channels import (
    SendFailed,
    post_webhook,
    send_mail,
    smtp_settings,
    webhook_url,
)
from churn.monitoring.digest import HEALTH
from churn.monitoring.health import NOTIFICATIONS_FILE
from churn.monitoring.ledger import ledger_key, ledger_path, record_sent, sent_keys


@dataclass
class DeliveryReport:
    """What one delivery did: messages sent, skipped (sent before) and failed, per channel, in words."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class DeliveryError(ChurnError):
    """Some messages could not be delivered (the others were); carries the report."""

    def __init__(self, report: DeliveryReport, run_dir: Path):
        self.report = report
        lines = "\n".join(f"  - {f}" for f in report.failed)
        super().__init__(
            f"{len(report.failed)} message(s) could not be delivered:\n{lines}\n"
            f"The run folder {run_dir} is complete and unchanged; {len(report.sent)} message(s) were sent. "
            f"Send the rest again with: churn notify --run {run_dir}")


def read_messages(run_dir: Path) -> list[dict[str, Any]]:
    """The messages of a run folder (its notifications.json)."""
    path = Path(run_dir) / NOTIFICATIONS_FILE
    if not path.is_file():
        raise ChurnError(f"{path} not found: {run_dir} is not a scoring run folder, or it was scored before "
                         "monitoring existed")
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))["messages"]
    except (ValueError, KeyError, TypeError):
        raise ChurnError(f"{path}: unreadable (expected an object with a 'messages' list)") from None
    return list(messages)


def recipients(message: dict[str, Any], config: Config) -> list[str]:
    """E-mail recipients of a message: those of its group, else those of "*" (health breaches: "*")."""
    to = config.monitoring.delivery.email_to
    group = message.get("group")
    listed = to.get(str(group)) if message.get("kind") != HEALTH and group is not None else None
    return list(listed if listed is not None else to.get("*", []))


def with_retries(send: Callable[[], None], retries: int, backoff: float, sleep: Callable[[float], None]) -> int:
    """Call `send` until it succeeds, retrying a retryable `SendFailed` up to `retries` times with a doubling
    back-off (or the server's Retry-After); returns the tries used. Raises the last failure, with the count."""
    for attempt in range(retries + 1):
        try:
            send()
            return attempt + 1
        except SendFailed as exc:
            if not exc.retry or attempt == retries:
                exc.args = (f"{exc.args[0]} (after {attempt + 1} tr{'y' if attempt == 0 else 'ies'})",)
                raise
            sleep(exc.wait if exc.wait is not None else backoff * 2 ** attempt)
    raise AssertionError("unreachable")


def deliver_run(run_dir: Path, config: Config, *, out_root: Path | None = None, env: Mapping[str, str] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Send the run's messages that the ledger does not hold yet to every configured channel."""
    dc = config.monitoring.delivery
    report = DeliveryReport()
    if not dc.channels:
        report.notes.append("no delivery channel configured (monitoring.delivery.channels)")
        return report
    run_dir = Path(run_dir)
    messages = read_messages(run_dir)
    env = os.environ if env is None else env
    # Settings first, for every channel: a missing variable stops before anything is sent.
    senders: dict[str, Callable[[dict[str, Any], list[str]], None]] = {}
    if "webhook" in dc.channels:
        url = webhook_url(env)
        senders["webhook"] = lambda m, _to: post_webhook(url, {"text": m["text"], "blocks": m["blocks"]},
                                                         dc.timeout_seconds)
    if "email" in dc.channels:
        smtp = smtp_settings(env)
        senders["email"] = lambda m, to: send_mail(smtp, to, m["title"], m["body"], dc.timeout_seconds)
    ledger = ledger_path(out_root or run_dir.parent, config)
    done = sent_keys(ledger)
    for channel, send in senders.items():
        last: float | None = None
        down: str | None = None  # the channel failed every retry: the rest is not tried, said as failed
        for m in messages:
            to = recipients(m, config) if channel == "email" else []
            if channel == "email" and not to:
                report.notes.append(f"email: no recipient for {m['title']!r} (monitoring.delivery.email_to)")
                continue
            key = ledger_key(m["key"], channel, ",".join(sorted(to)))
            if key in done:
                report.skipped.append(f"{channel}: {m['title']}")
                continue
            if down:
                report.failed.append(f"{channel}: {m['title']}: not tried ({down})")
                continue
            if last is not None:  # rate limit: one message per min_interval_seconds and channel
                sleep(max(0.0, dc.min_interval_seconds - (time.monotonic() - last)))
            try:
                with_retries(lambda m=m, to=to, send=send: send(m, to), dc.retries, dc.backoff_seconds, sleep)
            except SendFailed as exc:
                report.failed.append(f"{channel}: {m['title']}: {exc}")
                if exc.retry:
                    down = f"{channel} still failing after {dc.retries + 1} tries"
            else:
                record_sent(ledger, key)
                done.add(key)
                report.sent.append(f"{channel}: {m['title']}")
            last = time.monotonic()
    if report.failed:
        raise DeliveryError(report, run_dir)
    return report
