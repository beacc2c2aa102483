"""The closed loop: measure each campaign against its control group, and let the next plan learn from it.

In the order the loop runs (docs/campaigns.md):

* `stats`: intervals, the two-proportion test and the sample-size arithmetic, from counts;
* `effect`: a past run's contacted customers against its control group, per tier and incentive, once the
  label window has passed (`measure`), and the control share the next campaign needs (`control_advice`);
* `learning`: measured save rates shrunk towards the catalogue's (Beta-binomial empirical Bayes), written to
  the effects file `churn score --effects` reads;
* `uplift`: per-customer effects of each offer (two-model and X-learner on LightGBM, and `hazard`), Qini and
  uplift@k on a held-out campaign, used only for the offers where they beat the tier-level rates;
* `hazard`: the offer's hazard ratio on the churn model's own probability, learned from the contacted
  customers, judged by how well it predicts the held-out campaign's contacted customers;
* `run`: the files at the edges: reading a run folder and the data, writing campaign_effect.json and the
  effects file atomically, logging to MLflow.
"""
