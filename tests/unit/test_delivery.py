"""Alerts that reach people, against a local webhook server and a local SMTP sink on 127.0.0.1 (nothing
leaves the machine; both are fixtures of tests/conftest.py): a digest per region delivered once, retried
after a 500 and a 451, not resent on a rerun, at most one message per interval, a clear error when the
server is down, no personal data beyond the contact columns, and the run folder untouched throughout."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pandas as pd
import pytest

from churn.config import Config
from churn.errors import ChurnError
from churn.monitoring.delivery import DeliveryError, deliver_run
from churn.monitoring.health import RunHealth, health_files
from churn.monitoring.ledger import LEDGER_FILE

AS_OF = "2025-05-01"
PLAN = pd.DataFrame({
    "customer_id": ["001", "002", "003", "004"],
    "name": ["Ana Novak", "Jonas Müller", "Grace O'Neil", "Ayşe Yılmaz"],
    "email": ["ana@example.com", "jonas@example.com", "grace@example.com", "ayse@example.com"],
    "phone": ["+386 1 111", "+49 2 222", "+44 3 333", "+90 4 444"],
    "monthly_fee": [19.0, 59.0, 35.0, 19.0],
    "region": ["north", "south", "north", None],
})
ALERTS = pd.DataFrame({
    "customer_id": ["003", "001", "004", "002"],
    "why": ["risk rose by 30 points (10% to 40%)", "moved from low to medium", "moved from high to critical",
            "risk rose by 20 points (5% to 25%)"],
})
BREACHES = ["plan: 12.0% of customers in categories training never saw (e.g. 'platinum')"]


def config(channels: list[str], **delivery: object) -> Config:
    base = Config().model_dump()
    base["incentives"]["contact_columns"] = ["name"]  # only the name may leave with an alert
    base["monitoring"]["delivery"].update({"channels": channels, "backoff_seconds": 0.01,
                                           "min_interval_seconds": 0.0, "timeout_seconds": 5, **delivery})
    return Config.model_validate(base)


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run folder as scoring leaves it: its messages written by the real writer, and other outputs."""
    folder = tmp_path / "out" / AS_OF
    folder.mkdir(parents=True)
    health = RunHealth({"as_of": AS_OF, "model": {"ref": "models:/churn/2", "registered_name": "churn",
                                                  "registered_version": "2"}}, breaches=list(BREACHES))
    health_files(health, ALERTS, PLAN, folder, config([]))
    (folder / "alerts.csv").write_text("customer_id,why\n003,risk rose\n")
    return folder


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def env_for(webhook=None, smtp=None) -> dict[str, str]:
    env = {}
    if webhook is not None:
        env["CHURN_WEBHOOK_URL"] = webhook.url
    if smtp is not None:
        env.update({"CHURN_SMTP_HOST": "127.0.0.1", "CHURN_SMTP_PORT": str(smtp.port), "CHURN_SMTP_TLS": "none",
                    "CHURN_SMTP_SENDER": "churn@example.com"})
    return env


def test_webhook_gets_one_digest_per_region_once(run_dir: Path, webhook_server) -> None:
    before = fingerprint(run_dir)
    report = deliver_run(run_dir, config(["webhook"]), env=env_for(webhook_server))
    bodies = webhook_server.bodies()
    titles = [b["blocks"][0]["text"]["text"] for b in bodies]
    assert titles == [f"Churn risk rose for 1 customer (region: (no region)), run {AS_OF}",
                      f"Churn risk rose for 2 customers (region: north), run {AS_OF}",
                      f"Churn risk rose for 1 customer (region: south), run {AS_OF}",
                      f"Model health: 1 breach in the run {AS_OF} (churn/2)"]
    north = bodies[1]["text"]
    assert north == (f"*Churn risk rose for 2 customers (region: north), run {AS_OF}*\n"
                     "• 003 Grace O'Neil: risk rose by 30 points (10% to 40%)\n"
                     "• 001 Ana Novak: moved from low to medium")
    assert BREACHES[0] in bodies[3]["text"]
    assert len(report.sent) == 4 and report.failed == [] and report.skipped == []
    ledger = [json.loads(line)["sent"] for line in (run_dir.parent / LEDGER_FILE).read_text().splitlines()]
    assert len(ledger) == 4 and all(k.startswith(f"{AS_OF}|") and k.endswith("|webhook") for k in ledger)
    assert "|risk_jumps|north|" in ledger[1] and "|health|(all)|" in ledger[3]
    # A rerun of the same run sends nothing again.
    again = deliver_run(run_dir, config(["webhook"]), env=env_for(webhook_server))
    assert again.sent == [] and len(again.skipped) == 4 and len(webhook_server.received) == 4
    assert fingerprint(run_dir) == before


def test_no_personal_data_beyond_the_contact_columns(run_dir: Path, webhook_server) -> None:
    deliver_run(run_dir, config(["webhook"]), env=env_for(webhook_server))
    sent = json.dumps(webhook_server.bodies(), ensure_ascii=False)
    assert "Jonas Müller" in sent and "Ayşe Yılmaz" in sent  # the configured contact column
    for value in [*PLAN["email"], *PLAN["phone"], "59.0", "19.0"]:
        assert value not in sent


def test_retried_after_a_500_with_back_off(run_dir: Path, webhook_server) -> None:
    webhook_server.script[:] = [(500, "oops"), (503, "busy")]
    waits: list[float] = []
    report = deliver_run(run_dir, config(["webhook"], backoff_seconds=0.5), env=env_for(webhook_server),
                         sleep=waits.append)
    assert len(report.sent) == 4 and report.failed == []
    first = [b["blocks"][0]["text"]["text"] for b in webhook_server.bodies()[:3]]
    assert len(set(first)) == 1 and len(webhook_server.received) == 6  # the first message tried three times
    assert waits[:2] == [0.5, 1.0]  # back-off doubled


def test_at_most_one_message_per_interval(run_dir: Path, webhook_server) -> None:
    deliver_run(run_dir, config(["webhook"], min_interval_seconds=0.25), env=env_for(webhook_server))
    times = [t for t, _ in webhook_server.received]
    assert len(times) == 4 and min(b - a for a, b in zip(times, times[1:])) >= 0.24


def test_an_answer_other_than_ok_is_a_failure_not_retried(run_dir: Path, webhook_server) -> None:
    webhook_server.script[:] = [(200, "invalid_blocks")]
    with pytest.raises(DeliveryError) as err:
        deliver_run(run_dir, config(["webhook"]), env=env_for(webhook_server))
    assert "answered HTTP 200 'invalid_blocks', not 'ok' (after 1 try)" in str(err.value)
    assert len(err.value.report.sent) == 3 and len(webhook_server.received) == 4  # the others still went


def test_a_server_that_is_down_is_a_clear_error_and_the_run_stays(run_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = fingerprint(run_dir)
    env = {"CHURN_WEBHOOK_URL": f"http://127.0.0.1:{port}/services/secret-token"}
    with pytest.raises(DeliveryError) as err:
        deliver_run(run_dir, config(["webhook"], retries=2), env=env)
    text = str(err.value)
    assert f"cannot reach http://127.0.0.1:{port} (" in text and "(after 3 tries)" in text
    assert "not tried (webhook still failing after 3 tries)" in text
    assert f"The run folder {run_dir} is complete and unchanged" in text and f"churn notify --run {run_dir}" in text
    assert "secret-token" not in text  # the webhook's secret path is never printed
    assert not (run_dir.parent / LEDGER_FILE).exists() and fingerprint(run_dir) == before


def test_email_digests_go_to_each_regions_recipients_once(run_dir: Path, smtp_sink) -> None:
    cfg = config(["email"], email_to={"north": ["north@example.com"], "*": ["team@example.com"]})
    smtp_sink.fail_mail_from[:] = [451]  # a transient refusal: tried again
    report = deliver_run(run_dir, cfg, env=env_for(smtp=smtp_sink))
    got = [(rcpts, m["Subject"]) for _, rcpts, m in smtp_sink.messages]
    assert got == [(["team@example.com"], f"Churn risk rose for 1 customer (region: (no region)), run {AS_OF}"),
                   (["north@example.com"], f"Churn risk rose for 2 customers (region: north), run {AS_OF}"),
                   (["team@example.com"], f"Churn risk rose for 1 customer (region: south), run {AS_OF}"),
                   (["team@example.com"], f"Model health: 1 breach in the run {AS_OF} (churn/2)")]
    body = smtp_sink.messages[1][2].get_payload(decode=True).decode()
    assert "• 003 Grace O'Neil: risk rose by 30 points" in body and "grace@example.com" not in body
    assert smtp_sink.messages[0][0] == "churn@example.com" and len(report.sent) == 4
    deliver_run(run_dir, cfg, env=env_for(smtp=smtp_sink))
    assert len(smtp_sink.messages) == 4  # not resent


def test_missing_smtp_settings_stop_before_anything_is_sent(run_dir: Path, webhook_server) -> None:
    with pytest.raises(ChurnError, match="lists email but CHURN_SMTP_HOST and CHURN_SMTP_SENDER are not set"):
        deliver_run(run_dir, config(["webhook", "email"]), env=env_for(webhook_server))
    assert webhook_server.received == []


def test_at_most_max_customers_per_digest(tmp_path: Path, webhook_server) -> None:
    folder = tmp_path / "out" / AS_OF
    folder.mkdir(parents=True)
    cfg = config(["webhook"], max_customers=1, digest_by=None)
    health_files(RunHealth({"as_of": AS_OF, "model": {"ref": "m", "registered_version": None}}), ALERTS, PLAN,
                 folder, cfg)
    deliver_run(folder, cfg, env=env_for(webhook_server))
    [body] = webhook_server.bodies()
    assert body["text"].splitlines()[1:] == ["• 003 Grace O'Neil: risk rose by 30 points (10% to 40%)",
                                             "… and 3 more (alerts.csv)"]


def test_churn_notify_sends_what_is_missing(run_dir: Path, tmp_path: Path, webhook_server) -> None:
    import os
    import subprocess

    import forked_cli

    cfg = tmp_path / "notify.yaml"
    cfg.write_text("incentives: {contact_columns: [name]}\n"
                   "monitoring: {delivery: {channels: [webhook], min_interval_seconds: 0}}\n")
    env = {**os.environ, "COLUMNS": "300", "CHURN_WEBHOOK_URL": webhook_server.url}

    def notify() -> subprocess.CompletedProcess:
        return forked_cli.run(["notify", "--run", run_dir, "--config", cfg], env=env, timeout=120)

    first = notify()
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("sent webhook: ") == 4 and len(webhook_server.received) == 4
    second = notify()
    assert second.stdout.count("already sent, not again: webhook: ") == 4 and len(webhook_server.received) == 4
    missing = forked_cli.run(["notify", "--run", tmp_path, "--config", cfg], env=env, timeout=120)
    assert missing.returncode == 1 and "notifications.json not found" in missing.stderr
