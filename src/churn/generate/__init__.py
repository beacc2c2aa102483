"""Synthetic data: a realistic subscription or retail business with planted, documented churn drivers.

`generate` writes a data source (Parquet tables named and typed as in `churn.contract`) to a folder. Every
customer has latent traits (engagement, purchase rate, complaint propensity, price sensitivity, happiness);
a piecewise-constant churn hazard built from those traits, tenure and price increases decides if and when
they churn; most churners go through a 30-90 day decline phase first (fewer events, more complaints and
unresolved tickets, longer gaps between purchases, lower survey scores). Noise keeps the signal imperfect:
some churners leave without warning and some stayers decline and recover. The parameters live in
`PLANTED` (a frozen dataclass), so tests and docs (docs/synthetic-data.md) can refer to them.

Everything is vectorised numpy over chunks of `CHUNK_SIZE` customers; chunk `k` draws from
`np.random.SeedSequence(seed, spawn_key=(k,))` (the k-th child of `SeedSequence(seed)`), so the same
arguments give byte-identical files and memory stays bounded. Rows are sorted by customer id, then time.

The package, in the order the data is made: `planted` (the parameters), `names` (markets and names),
`simulation` (each customer's traits and fate), `tables` (their activity as Arrow tables) and `writing`
(`generate` and `ground_truth`); retention campaigns and their planted effects: `campaigns` (`Campaign`, what a
contact does to the churn hazard) and `truth` (`campaign_truth`, `offer_truth`).
"""

from __future__ import annotations

from churn.generate.campaigns import Campaign
from churn.generate.planted import MECHANISMS, PLANTED, Business, Mechanism, Planted
from churn.generate.tables import EVENT_TYPES, TICKET_CATEGORIES
from churn.generate.truth import campaign_truth, offer_truth
from churn.generate.writing import CHUNK_SIZE, CONTACT_HISTORY, generate, ground_truth

__all__ = [
    "CHUNK_SIZE",
    "CONTACT_HISTORY",
    "EVENT_TYPES",
    "MECHANISMS",
    "PLANTED",
    "TICKET_CATEGORIES",
    "Business",
    "Campaign",
    "Mechanism",
    "Planted",
    "campaign_truth",
    "generate",
    "ground_truth",
    "offer_truth",
]
