"""The marketing report: the real report of `churn demo` rendered in a real browser (system Chromium via
Playwright), plus fast checks on a hand-built plan (escaping, right-to-left text, missing columns).

The browser tests need /usr/bin/chromium; install it with `scripts/install-chromium.sh` (as root). When it is
missing they FAIL with that instruction instead of skipping, so a green run always means the report was
really rendered. The demo report's screenshot is saved in the test's temporary folder (its path is printed)
and, when CHURN_SCREENSHOT is set, copied there too.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.scoring.report import write_report
from churn.scoring.summary import IncentiveResult, PlanSummary

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIERS = ["critical", "high", "medium", "low"]
PERSIAN_DISCOUNT = "مشتری گرامی، ۲۰٪ تخفیف برای شما"

NAMES = {
    "en": ["Emma Brown", "Oliver Smith", "Grace O'Neil"],
    "de": ["Jonas Müller", "Lea Schäfer", "Lukas Weiß"],
    "sl": ["Ana Novak", "Luka Kovačič", "Maja Horvat"],
    "lv": ["Jānis Bērziņš", "Līga Ozola", "Ērika Kalniņa"],
    "tr": ["Ayşe Yılmaz", "Mehmet Çelik", "Zeynep Şahin"],
    "fa": ["سارا احمدی", "علی رضایی", "مریم حسینی"],
}
MESSAGES = {  # incentive -> language -> template; lv has no personal_call text (falls back to en)
    "discount_20": {
        "en": "Hi {name}, enjoy 20% off for the next 3 months.",
        "de": "Hallo {name}, sichern Sie sich 20 % Rabatt für die nächsten 3 Monate.",
        "sl": "Pozdravljeni, {name}! Izkoristite 20 % popusta za naslednje 3 mesece.",
        "lv": "Sveiki, {name}! Saņemiet 20% atlaidi nākamajiem 3 mēnešiem.",
        "tr": "Merhaba {name}, önümüzdeki 3 ay için %20 indirim sizi bekliyor.",
        "fa": PERSIAN_DISCOUNT,
    },
    "free_month": {
        "en": "Hi {name}, here is a free month on us.",
        "de": "Hallo {name}, ein Gratismonat als Dankeschön für Ihre Treue.",
        "sl": "Pozdravljeni, {name}! Podarjamo vam en brezplačen mesec.",
        "lv": "Sveiki, {name}! Dāvinām jums vienu bezmaksas mēnesi.",
        "tr": "Merhaba {name}, bir ay ücretsiz kullanım hediyemiz.",
        "fa": "{name} عزیز، یک ماه رایگان هدیه ما به شماست.",
    },
    "loyalty_points": {
        "en": "Hi {name}, we added 500 loyalty points to your account.",
        "de": "Hallo {name}, wir haben Ihrem Konto 500 Treuepunkte gutgeschrieben.",
        "sl": "Pozdravljeni, {name}! Na vaš račun smo dodali 500 točk zvestobe.",
        "lv": "Sveiki, {name}! Jūsu kontā pievienoti 500 lojalitātes punkti.",
        "tr": "Merhaba {name}, hesabınıza 500 sadakat puanı ekledik.",
        "fa": "{name} عزیز، ۵۰۰ امتیاز وفاداری به حساب شما اضافه شد.",
    },
    "personal_call": {
        "en": "Hi {name}, one of our advisers will call you shortly.",
        "de": "Hallo {name}, unsere Beraterin ruft Sie in Kürze an.",
        "sl": "Pozdravljeni, {name}! Naša svetovalka vas bo kmalu poklicala.",
        "tr": "Merhaba {name}, danışmanımız sizi yakında arayacak.",
        "fa": "{name} عزیز، مشاور ما به زودی با شما تماس می‌گیرد.",
    },
}
UNIT_COST = {"discount_20": 18.0, "free_month": 25.0, "loyalty_points": 5.0, "personal_call": 40.0}
SAVE_RATE = {"discount_20": 0.30, "free_month": 0.25, "loyalty_points": 0.10, "personal_call": 0.40}
REASONS = [
    "Logged in much less often in the last 30 days",
    "Has 2 or more open support tickets",
    "No order in the last 90 days",
    "Gave a low satisfaction score",
    "Monthly fee went up recently",
    "Uses fewer product features than before",
]


def make_plan(n: int = 600, seed: int = 7) -> tuple[pd.DataFrame, PlanSummary]:
    """A realistic retention plan and its summary: six languages (Persian too), four tiers, four offers."""
    rng = np.random.default_rng(seed)
    langs = rng.choice(list(NAMES), size=n, p=[0.35, 0.2, 0.1, 0.1, 0.1, 0.15])
    p = np.round(rng.beta(1.6, 4.0, size=n), 4)
    tier_idx = np.select([p >= 0.5, p >= 0.3, p >= 0.15], [0, 1, 2], default=3)
    value = np.round(rng.lognormal(6.2, 0.6, size=n), 2)
    consent = rng.random(n) > 0.1
    holdout = (tier_idx < 3) & consent & (rng.random(n) < 0.1)
    cooldown = rng.random(n) < 0.05
    incentive, contact, why, message, msg_lang, cost = [], [], [], [], [], []
    for i in range(n):
        t = tier_idx[i]
        inc = None
        if t == 0:
            inc = "personal_call" if value[i] > 700 else "discount_20"
        elif t == 1:
            inc = "free_month"
        elif t == 2:
            inc = "loyalty_points"
        reason = None
        if inc is None:
            reason = "low_risk"
        elif not consent[i]:
            reason = "no_marketing_consent"
        elif holdout[i]:
            reason = "control_group"
        elif cooldown[i]:
            reason = "contacted_recently"
        elif t == 2 and i % 7 == 0:
            reason = "budget_exhausted"
        name = NAMES[langs[i]][i % 3]
        templates = MESSAGES.get(inc or "", {})
        lang = langs[i] if langs[i] in templates else "en"
        incentive.append(inc)
        contact.append(reason is None)
        why.append(reason)
        message.append(templates[lang].format(name=name) if inc else None)
        msg_lang.append(lang if inc else None)
        cost.append(UNIT_COST[inc] if reason is None else 0.0)
    expected_loss = np.round(p * value, 2)
    saved = np.array([SAVE_RATE.get(inc or "", 0.0) for inc in incentive]) * expected_loss * np.array(contact)
    r = rng.integers(0, len(REASONS), size=(n, 3))
    plan = pd.DataFrame(
        {
            "customer_id": [f"{i:06d}" for i in range(1, n + 1)],
            "as_of": pd.Timestamp("2026-11-01"),
            "churn_probability": p,
            "risk_tier": pd.Categorical([TIERS[t] for t in tier_idx], categories=TIERS, ordered=True),
            "reason_1": [REASONS[a] for a in r[:, 0]],
            "reason_2": [REASONS[(a + 1) % len(REASONS)] for a in r[:, 1]],
            "reason_3": [REASONS[(a + 3) % len(REASONS)] for a in r[:, 2]],
            "customer_value": value,
            "expected_loss": expected_loss,
            "incentive": incentive,
            "channel": np.where(np.array(incentive, dtype=object) == "personal_call", "call", "email"),
            "contact": contact,
            "holdout": holdout,
            "offer_message": message,
            "message_language": msg_lang,
            "no_contact_reason": why,
            "model_version": "churn-lgbm-v3",
            "name": [NAMES[lang][i % 3] for i, lang in enumerate(langs)],
            "email": [f"customer{i:06d}@example.com" for i in range(1, n + 1)],
            "language": langs,
            "plan": rng.choice(["Basic", "Plus", "Premium"], size=n, p=[0.5, 0.35, 0.15]),
            "region": rng.choice(["North", "South", "East", "West", "Zürich & <Umland>"], size=n),
            "marketing_consent": consent,
            "incentive_cost": cost,
            "expected_net_value": np.round(saved - np.array(cost), 2),
        }
    )
    sent = plan[plan["contact"]]
    per_incentive = {}
    for inc, g in sent.groupby("incentive"):
        s = float(np.round(saved[g.index].sum(), 2))
        c = float(g["incentive_cost"].sum())
        per_incentive[inc] = IncentiveResult(customers=len(g), cost=c, expected_saved_value=s,
                                             expected_net_value=s - c)
    summary = PlanSummary(
        budget=20_000.0,
        budget_used=float(sent["incentive_cost"].sum()),
        currency="EUR",
        incentives=per_incentive,
        expected_saved_value=sum(r.expected_saved_value for r in per_incentive.values()),
        no_contact_reasons=plan["no_contact_reason"].value_counts().to_dict(),
        control_group=int(plan["holdout"].sum()),
        missing_translations={"lv": 4},
    )
    return plan, summary


META = {"model_version": "churn-lgbm-v3", "as_of": "2026-11-01", "data_source": "warehouse export 2026-11-01"}


@pytest.fixture(scope="module")
def plan_and_summary() -> tuple[pd.DataFrame, PlanSummary]:
    return make_plan()


# ----------------------------------------------------------------------------------------- fast checks
def test_report_is_self_contained_escaped_and_deterministic(plan_and_summary, tmp_path):
    plan, summary = plan_and_summary
    a = write_report(plan, summary, META, tmp_path / "a.html")
    b = write_report(plan, summary, META, tmp_path / "b.html")
    html = a.read_text(encoding="utf-8")
    assert html == b.read_text(encoding="utf-8")  # no timestamp unless the caller passes one
    assert '<meta charset="utf-8">' in html
    assert "<script" not in html.lower()
    # No external resources: every src/href is a data: URI or an in-page anchor.
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("data:image/png;base64,", "#")), url
    assert "Zürich &amp; &lt;Umland&gt;" in html and "<Umland>" not in html
    assert PERSIAN_DISCOUNT in html
    assert re.search(r'<p class="msg" lang="fa" dir="rtl">', html)
    for section in (
        "headline",
        "distribution",
        "tiers",
        "budget",
        "reasons",
        "breakdown",
        "control",
        "not-contacted",
        "messages",
        "notes",
    ):
        assert f'<section id="{section}">' in html
    assert "€20,000" in html  # the budget


def test_report_refuses_to_overwrite(tmp_path):
    plan, summary = make_plan(n=60, seed=5)
    path = write_report(plan, summary, META, tmp_path / "report.html")
    before = path.read_bytes()
    with pytest.raises(ChurnError, match="already exists"):
        write_report(plan.head(10), summary, META, path)
    assert path.read_bytes() == before
    write_report(
        plan.head(10), summary, {**META, "generated_at": "2026-11-02T08:00:00+00:00"}, path, overwrite=True
    )
    assert "Generated 2026-11-02 08:00 UTC" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp files left


def test_report_degrades_without_optional_columns(tmp_path):
    plan, _ = make_plan(n=80, seed=3)
    minimal = plan[
        [
            "customer_id",
            "as_of",
            "churn_probability",
            "risk_tier",
            "reason_1",
            "reason_2",
            "reason_3",
            "incentive",
            "channel",
            "contact",
            "holdout",
            "offer_message",
            "message_language",
            "no_contact_reason",
            "model_version",
        ]
    ]
    html = write_report(minimal, None, {}, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "no region column" in html and "no plan column" in html
    assert "No budget was set" in html
    assert "Customer value is not in the data" in html
    assert html.count('<img class="chart"') >= 2


# -------------------------------------------------------------------------------------- browser check
@pytest.mark.slow
def test_report_renders_in_chromium(plan_and_summary, tmp_path):
    plan, summary = plan_and_summary
    report = write_report(
        plan, summary, {**META, "generated_at": "2026-11-02T08:00"}, tmp_path / "report.html"
    )
    shot = tmp_path / "report.png"

    with open_in_chromium(report) as page:
        images = page.eval_on_selector_all(
            "img.chart", "els => els.map(e => ({alt: e.alt, complete: e.complete, w: e.naturalWidth}))"
        )
        assert len(images) >= 3, images
        for img in images:
            assert img["complete"] and img["w"] > 0, f"chart did not render: {img['alt']}"

        persian = page.locator('p.msg[lang="fa"]').first
        assert persian.count() == 1
        assert persian.evaluate("e => getComputedStyle(e).direction") == "rtl"
        assert PERSIAN_DISCOUNT in page.locator('p.msg[lang="fa"]').all_inner_texts()
        english = page.locator('p.msg[lang="en"]').first
        assert english.evaluate("e => getComputedStyle(e).direction") == "ltr"
        assert "Customers at risk" in page.locator("#headline").inner_text()

        page.screenshot(path=str(shot), full_page=True)

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a full page with charts, not a blank frame


# ------------------------------------------------------------------------------ the real demo report
AWKWARD = re.compile(r"\bonly 0(?![.\d])|(?<![\d.,+-])1 (?:\w+ )?days\b|\b0\.0 hours\b")


@contextmanager
def open_in_chromium(report: Path) -> Iterator[Any]:
    """A headless Chromium page showing `report`; on leaving, the page must have logged no console or page
    error and requested nothing but the file itself and inline data."""
    sync_playwright = _need_browser()
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            yield page
        finally:
            browser.close()
    assert console_errors == [] and page_errors == [], (console_errors, page_errors)
    assert all(u.startswith(("file://", "data:")) for u in requests), requests


def _need_browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs the system Chromium. "
            "Install it with `sudo scripts/install-chromium.sh` (apt-get install chromium), then re-run."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - dev extra missing
        pytest.fail(f"playwright (Python) is not installed ({exc}); install the dev extras")
    return sync_playwright


@pytest.fixture(scope="module")
def demo_run(demo_workspace) -> tuple[Path, dict]:
    """`churn demo` as a user runs it (the session's shared workspace, tests/conftest.py): its run folder and
    summary. The screenshot goes to a folder of this test's own, so the workspace stays read-only."""
    return demo_workspace.run_dir, demo_workspace.summary


def _count(text: str) -> int:
    """'1,234' -> 1234 (the report writes counts with thousands separators)."""
    return int(text.strip().replace(",", ""))


@pytest.mark.slow
def test_demo_report_renders_in_chromium_with_the_summary_counts(demo_run, tmp_path):
    run_dir, summary = demo_run
    report = run_dir / "report.html"
    shot = tmp_path / "report.png"
    with open_in_chromium(report) as page:
        images = page.eval_on_selector_all(
            "img.chart", "els => els.map(e => ({alt: e.alt, complete: e.complete, w: e.naturalWidth,"
                         " shown: e.getBoundingClientRect().width}))"
        )
        # risk distribution, tiers, incentives: every chart the page has is decoded and laid out
        assert len(images) == 3, images
        for img in images:
            assert img["complete"] and img["w"] > 0 and img["shown"] > 100, f"chart did not render: {img}"

        def shown(selector: str) -> int:
            return _count(page.locator(selector).inner_text())

        assert shown('[data-count="scored"]') == summary["status_counts"]["scored"]
        assert shown('[data-count="customers"]') == summary["customers"]
        assert shown('[data-count="contacted"]') == summary["contacted"]
        assert shown('[data-count="control_group"]') == summary["control_group"]
        for st, n in summary["status_counts"].items():
            assert shown(f'[data-status="{st}"]') == n, st
        for tier, t in summary["tiers"].items():
            assert shown(f'[data-tier="{tier}"]') == t["customers"], tier
        for name, inc in summary["incentives"].items():
            assert shown(f'[data-incentive="{name}"]') == inc["customers"], name
        budget = page.locator("#budget").inner_text()
        assert f"€{summary['budget_used']:,.0f} of €{summary['budget']:,.0f}" in budget

        # Why customers are at risk: drivers, each listed once per tier, in plain words
        why = page.locator("#reasons")
        signals = why.locator("tbody tr td:first-child").all_inner_texts()
        assert signals and "typically:" in why.inner_text()
        for table in why.locator("table").all():
            names = [t.split("\n")[0] for t in table.locator("tbody tr td:first-child").all_inner_texts()]
            assert len(names) == len(set(names)), names
        assert not AWKWARD.search(page.locator("body").inner_text())
        page.screenshot(path=str(shot), full_page=True)

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a full page with charts
    print(f"\nscreenshot of the demo report: {shot}")
    if os.environ.get("CHURN_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CHURN_SCREENSHOT"])


@pytest.mark.slow
def test_demo_reasons_read_naturally_in_scores_and_segments(demo_run):
    run_dir, _ = demo_run
    scores = pd.read_parquet(run_dir / "scores.parquet")
    texts = pd.concat([scores[c] for c in ("reason_1", "reason_2", "reason_3")]).dropna()
    assert len(texts) > 1000
    bad = texts[texts.str.contains(AWKWARD)]
    assert bad.empty, bad.value_counts().head(10)
    # every reason names its feature
    for i in (1, 2, 3):
        assert (scores[f"reason_{i}"].isna() == scores[f"reason_{i}_feature"].isna()).all()
    for csv in (run_dir / "segments").glob("*.csv"):
        seg = pd.read_csv(csv, dtype=str, encoding="utf-8-sig")
        for c in [c for c in seg.columns if c.startswith("reason_")]:
            assert not seg[c].dropna().str.contains(AWKWARD).any(), csv.name
