"""The ledger of messages sent: one JSON line per message and channel, so a rerun of a run (or `churn
notify` after a failure) sends only what was not sent yet.

A line is appended right after the channel accepted the message (O_APPEND, flushed and synced), so a crash
can at worst resend the one message in flight. The ledger lives in the output root, outside the run folders
(a rerun with --overwrite replaces the run folder, not what was already sent).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from churn.config import Config

LEDGER_FILE = ".churn-sent.jsonl"


def ledger_path(out_root: Path, config: Config) -> Path:
    """Where the ledger is: `monitoring.delivery.ledger`, else .churn-sent.jsonl in the output root."""
    configured = config.monitoring.delivery.ledger
    return Path(configured) if configured else out_root / LEDGER_FILE


def sent_keys(path: Path) -> set[str]:
    """The keys (message key + channel) already sent; a torn last line (a crash mid-write) is ignored."""
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            keys.add(json.loads(line)["sent"])
        except (ValueError, KeyError, TypeError):
            continue
    return keys


def ledger_key(message_key: str, channel: str, recipient: str = "") -> str:
    """What the ledger records for one message sent over one channel (to one recipient, for e-mail)."""
    return "|".join([message_key, channel, *([recipient] if recipient else [])])


def record_sent(path: Path, key: str) -> None:
    """Append `key` to the ledger and sync it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"sent": key, "at": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
