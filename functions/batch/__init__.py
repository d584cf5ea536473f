"""Batch inference, behind the three thin handlers of the batch state machine:

A job is a folder of one model, `batch/in/<model>/<job>/`, scored by that model (its
`[models.<name>.batch] model_version`, else its alias `production`); its outputs go under
`batch/out/<model>/<job>/`.

- `plan` (`plan.py`): list `batch/in/<model>/<job>/`, count each input's rows cheaply (Parquet: the
  footer, read by ranged GETs; CSV and JSON Lines: one streamed pass that records the byte
  offset of every `rows_per_item`-th record, so each item later reads only its bytes; gzip:
  decompressed, and an item skips to its rows), pin the model version (alias `production` when
  the job names none: one job is scored by one version), and write the items (a JSON array) for
  the Distributed Map's S3 ItemReader;
- `score_item` (`item.py`): one item's rows read (`reading.py`), checked and scored
  (`scoring.py`), written under `batch/out/<model>/<job>/` as `<stem>-<start>-<end>.parquet`
  (input_key, row, model_version, prediction, `probability_<class>` per class for
  classifiers), rejected rows as `rejects/<stem>-<start>-<end>.jsonl`, and the item's counts
  as `_items/<item>.json`;
- `finalize` (`finalize.py`): the item results summed into the job's `manifest.json`;
  planned items without a result failed (after their retries) and their rows are `not_scored`.

The model is loaded through `functions.serving.model.load_version`, the path the predict
function uses (registry record, sha256 check, signature, onnxruntime session). The three
steps share one container's config and adapters (`stage.py`).
"""
