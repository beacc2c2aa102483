"""Monitoring: is the model still fit, how did its scores turn out, how is the business doing, and telling
the people who act on it. docs/monitoring.md explains it for users.

- `reference` the training reference stored with the model (`DriftReference`, `reference_for`);
- `statistics` PSI, Jensen-Shannon distance and the expected ROC AUC (CBPE), in numpy;
- `drift` a scoring run against the reference; `performance` the estimated (no labels) and realised
  performance on the customers the campaign does not change; `health` both for one run (drift.json,
  the report's "Model health"); `history` the earlier runs' records for the trends;
- `backtest` realised performance once the label window has passed (`churn backtest`);
- `kpis` business KPIs per month and segment (`churn kpis`);
- `digest` the messages of a run, `channels` webhook and SMTP, `ledger` what was sent, `delivery` sending
  with retries and rate limits (`churn notify`), `tracking` monitoring runs in MLflow, `publish` what
  scoring does once the run folder is in place.
"""
