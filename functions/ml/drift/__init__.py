"""Data and prediction drift: a live window of feature values against the model's reference
profile (`functions.ml.reference_profile`), and live performance from feedback labels. Pure and
cheap: numpy at import, scipy only for the small-window tests, never pandas (the monitoring
function must stay small and fast).

A window is streamed through `engine.DriftAccumulator` in chunks of any size with bounded memory
(sufficient statistics per column, `windows`; raw values only while the window is small);
`engine.compare` is one chunk. Per feature:

- numeric (`numeric`): PSI over the profile's quantile bins, Wasserstein distance normed by the
  reference std (binned, or exact against the profile's row sample for small windows); small
  windows are tested against that sample with KS and Brown-Forsythe (spread),
  Bonferroni-combined (binned chi-square when the sample lacks the column);
- categorical (`categorical`): Jensen-Shannon distance (base 2) over category shares,
  chi-square test; values never seen in training are counted (`unseen`) and pooled into one
  extra category;
- every feature (`effects`): absolute change of the null share (binomial test) and the share of
  present values outside the training [min, max] (numeric).

Verdicts. Windows of at least `large_window` rows use effect sizes only (p-values shrink with
the sample size and flag every trivial shift). Smaller windows (down to `min_rows`) need both a
Benjamini-Hochberg-significant test (alpha across all features, `correction`) and the same
effect-size floor. Below `min_rows` the report is `insufficient_data`.

Each feature's effects are of two kinds: distribution drift (PSI, Wasserstein, JS distance) and
data-quality breaks (null share change, share outside the training range, share of unseen
categories). The dataset drifts (`verdict`) when the share of features with distribution drift
at `minor` or worse reaches `share`; or a critical feature's distribution drift is `major`
(critical: `critical_features` when configured, else the features carrying the top half of the
served model's permutation importance, stored in the reference profile; an old profile without
importances has none); or a data-quality break reaches `data_quality_fail`, whatever the share.
`DriftReport.decision` states the rule as applied. Prediction drift is reported beside the
features and is not part of that verdict.

Modules: `report` (thresholds, the report), `presentation` (how a report is shown),
`columns` (values as numbers), `windows` (streamed sufficient statistics), `significance`
(p-values of counts), `effects` (a feature's effects before the gate, the null share),
`numeric`, `categorical`, `correction` (Benjamini-Hochberg), `verdict` (the dataset rule),
`engine` (compare, stream), `performance` (live metrics from feedback labels), `estimate`
(a classifier's performance estimated without labels from its calibrated probabilities,
CBPE-style).

docs/drift.md has the measured detection table (which shift is flagged at which window size),
the false-positive rates, the reasons for each threshold and the streaming memory bound.
"""
