"""docs/configuration.md, generated from the config schema (`churn.config.schema`) so it cannot drift from it.

Every key of every section is listed with its type, its default and what it means. The meaning is the
schema's own comment on that field (the trailing `# ...` or the comment lines just above it) and each
section's docstring: the schema stays the one place where a setting is explained. Each section ends with
its defaults as YAML, ready to copy into a config. `tests/unit/test_config_doc.py` fails when the file and
the schema disagree; regenerate with `CHURN_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/unit/test_config_doc.py`.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import tokenize
import types
import typing
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from churn.config import Config

INTRO = """# Configuration

Every key of the YAML config, its type, its default and what it does. Generated from the schema
(`src/churn/config/schema.py`) by `churn.config_docs.config_markdown`; `tests/unit/test_config_doc.py` fails when
this file and the schema disagree.

A config is YAML; every section has working defaults, so a config names only what differs
(`configs/default.yaml` is the demo's). A section may live in its own file: `incentives: incentives.yaml`
reads that file, relative to the config. Unknown keys are errors, so a typo is reported, not ignored.
Pass a config to any command with `--config`, e.g. `churn validate --data data/demo --config configs/default.yaml`.
"""


def _comments(cls: type[BaseModel]) -> dict[str, str]:
    """{field: comment} from the class source: the trailing comment of the field's line, else the comment
    lines right above it."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            trailing[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[str, str] = {}
    block: str | None = None  # a comment above a field also covers the uncommented fields right below it
    for i, line in enumerate(lines, start=1):
        m = re.match(r"\s+(\w+)\s*:", line)
        if not m or m.group(1) not in cls.model_fields:
            block = None
            continue
        code = line.split("#", 1)[0]
        if i in trailing and "#" in line and code.strip():
            out[m.group(1)] = trailing[i]
            block = None
            continue
        above, j = [], i - 1
        while j >= 1 and lines[j - 1].strip().startswith("#"):
            above.insert(0, lines[j - 1].strip().lstrip("#").strip())
            j -= 1
        if above:
            block = " ".join(above)
        if block:
            out[m.group(1)] = block
    return out


# What the schema's comments do not say (keyed "Model.field"). The test checks that every key here is a
# field of the schema and that every field has a meaning, from its comment or from here.
MEANINGS: dict[str, str] = {
    "Config.seed": "seed for everything random (control group draw, sampling, model training)",
    "Config.output_dir": "where `churn score` and `churn demo` write their run folders",
    "SourcesConfig.path": "folder holding the tables (`--data` overrides it)",
    "SourcesConfig.tables": "per table (customers, events, tickets, orders, surveys, fee_changes): path, "
                            "column names and file dialect",
    "EngineConfig.threads": "DuckDB worker threads",
    "EngineConfig.memory_limit": "DuckDB memory cap; larger work spills to disk",
    "EngineConfig.temp_directory": "where DuckDB spills (default: its own temporary folder)",
    "FeaturesConfig.families": "feature families to build (a family is skipped anyway when its table is absent)",
    "EngagementConfig.windows": "windows in days for event counts, active days and hours of use",
    "EngagementConfig.max_event_types": "how many of the most frequent event types get their own counts",
    "EngagementConfig.weeks_active": "weeks looked back for the share of weeks with any activity",
    "SupportConfig.windows": "windows in days for ticket and complaint counts",
    "PurchasesConfig.windows": "windows in days for order counts and spend",
    "ProfileConfig.categoricals": "customer attributes used as categories (those present in the data)",
    "LabelConfig.horizon_days": "churn within this many days after the as-of date is a positive label",
    "SnapshotsConfig.as_of": "explicit training dates (instead of `count` month starts)",
    "SnapshotsConfig.count": "how many monthly snapshots the training frame stacks",
    "ModelConfig.experiment": "MLflow experiment name",
    "ModelConfig.registered_name": "MLflow registered model name (`models:/<name>@champion`)",
    "ModelConfig.seed": "seed of LightGBM, the tuner and the calibration folds",
    "ModelConfig.n_jobs": "threads for LightGBM",
    "ModelConfig.params": "LightGBM parameters of the `lightgbm` candidate",
    "ModelConfig.num_boost_round": "maximum boosting rounds",
    "ModelConfig.early_stopping_rounds": "stop when validation has not improved for this many rounds",
    "ModelConfig.imbalance": "class weighting: none, or balanced (reweight churners)",
    "ModelConfig.calibration": "probability calibration: isotonic regression or a sigmoid (Platt)",
    "ModelConfig.auto_tune_trials": "Optuna trials of the small-data search",
    "ModelConfig.auto_tune_minutes": "wall-clock cap of that search",
    "TiersConfig.method": "tiers by probability thresholds, or by the riskiest shares of the list",
    "TiersConfig.levels": "the tiers, riskiest first; each has min_probability or top_share",
    "TierLevel.name": "tier name, as shown in segments and the report",
    "TierLevel.min_probability": "probability tiers: the lowest churn probability in this tier",
    "ValueConfig.spend_window_days": "spend method: days of order history averaged",
    "IncentivesConfig.currency": "currency of costs and values (shown in the report and workbook)",
    "IncentivesConfig.budget": "total spend allowed for incentives and contacts in one run",
    "IncentivesConfig.control_share": "share of contactable customers per tier held out as a control group",
    "IncentivesConfig.cooldown_days": "customers contacted within this many days are not contacted again",
    "IncentivesConfig.default_language": "message language when a customer's language has no template",
    "IncentivesConfig.channels": "contact channel per customer and the cost of a contact",
    "IncentivesConfig.catalogue": "the incentives that may be offered (see docs/incentives.md)",
    "ChannelsConfig.default": "channel when nothing else decides",
    "ChannelsConfig.by_language": "channel by customer language, e.g. `{de: letter}`",
    "ChannelsConfig.by_region": "channel by customer region",
    "Incentive.name": "unique name, used in outputs and segment file names",
    "Incentive.kind": "what sort of offer it is",
    "Incentive.unit_cost": "fixed cost per customer who gets it",
    "Incentive.max_customers": "cap on how many customers get it (None: no cap)",
    "Incentive.eligible": "who may get it",
    "Eligibility.tiers": "risk tiers it may go to (None: any)",
    "Eligibility.plans": "plans it may go to (None: any)",
    "Eligibility.regions": "regions it may go to (None: any)",
    "Eligibility.countries": "countries it may go to (None: any)",
    "Eligibility.min_value": "lowest customer value it may go to",
    "Eligibility.max_value": "highest customer value it may go to",
    "ScoringConfig.chunk_rows": "rows scored at a time (bounds memory)",
    "ScoringConfig.alert_probability_rise": "alerts.csv lists customers whose probability rose at least this much "
                                            "since the previous run",
    "ScoringConfig.write_csv": "also write scores.csv (scores.parquet is always written)",
}


def meanings(model: type[BaseModel]) -> dict[str, str]:
    """{field: meaning} of one model: its schema comment, else MEANINGS, else the section it opens."""
    notes = _comments(model)
    out = {}
    for name, field in model.model_fields.items():
        text = notes.get(name) or MEANINGS.get(f"{model.__name__}.{name}", "")
        if not text and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            text = f"section, see [{name}](#{field.annotation.__name__.lower()})"
        out[name] = text
    return out


def _type_name(tp: Any) -> str:
    """A readable type: `int`, `list[str]`, `"path" | "treeshap"`, `str | None`."""
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in get_args(tp))}]"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    return getattr(tp, "__name__", str(tp))


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json", exclude_defaults=True) for v in value]
    value = json.loads(json.dumps(value, default=str))
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _models(root: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(dotted path, model) for the root and every nested section, depth first in field order."""
    out: list[tuple[str, type[BaseModel]]] = []
    seen: set[type] = set()

    def walk(path: str, model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((path, model))
        for name, field in model.model_fields.items():
            for tp in (field.annotation, *get_args(field.annotation),
                       *[a for arg in get_args(field.annotation) for a in get_args(arg)]):
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    walk(f"{path}.{name}" if path else name, tp)

    walk("", root)
    return out


def _cell(text: str) -> str:
    # "|" would end the cell; "<table>" would be read as HTML
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def config_markdown(root: type[BaseModel] = Config) -> str:
    """The whole configuration reference as Markdown."""
    parts = [INTRO]
    defaults = Config().model_dump(mode="json")
    for path, model in _models(root):
        title = path or "(top level)"
        parts.append(f'\n<a id="{model.__name__.lower()}"></a>\n\n## `{title}`\n')
        doc = inspect.getdoc(model)
        if doc and model.__doc__:  # the model's own docstring, not one inherited from BaseModel
            parts.append(doc + "\n")
        notes = meanings(model)
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            if name == "source_file":
                continue  # set by load_config, not a setting
            parts.append(f"| `{name}` | {_cell(_type_name(field.annotation))} | {_cell(_default(field))} | "
                         f"{_cell(notes.get(name, ''))} |")
        node: Any = defaults
        for key in path.split(".") if path else []:
            node = node.get(key) if isinstance(node, dict) else None
        if path and isinstance(node, dict) and node:
            example = yaml.safe_dump({path.split(".")[-1]: node}, sort_keys=False, allow_unicode=True)
            nested = "\n".join("  " * i + f"{k}:" for i, k in enumerate(path.split(".")[:-1]))
            indent = "  " * (len(path.split(".")) - 1)
            body = "\n".join(indent + line for line in example.rstrip().splitlines())
            parts.append("\nDefaults:\n\n```yaml\n" + (nested + "\n" if nested else "") + body + "\n```")
    return "\n".join(parts).rstrip() + "\n"
