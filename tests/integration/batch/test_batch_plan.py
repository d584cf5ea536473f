"""Planning a batch job (`functions/batch/plan.py`) in moto: which files are read, and which
are reported unreadable with a reason the user can act on."""

from __future__ import annotations

from functions.batch.contracts import BatchRequest
from functions.batch.plan import plan
from functions.common.layout import job_inputs
from functions.ml.sample_data import churn_frame
from tests.helpers.cloud import Cloud
from tests.helpers.models import trained_churn
from tests.helpers.registry import publish


def test_a_csv_separated_by_another_delimiter_is_unreadable_naming_it(cloud: Cloud) -> None:
    """Read with the configured comma, `age;tenure;...` is one column: every row would be
    rejected as missing every feature; the plan names the separator instead."""
    publish(cloud, trained_churn(200, seed=1))
    rows = churn_frame(30, seed=2, duplicate_share=0.0).drop(columns=["churned"])
    prefix = job_inputs("june")
    for name, separator in (("comma.csv", ","), ("semicolon.csv", ";")):
        body = rows.to_csv(index=False, sep=separator).encode()
        cloud.s3.put_object(Bucket=cloud.bucket, Key=prefix + name, Body=body)

    planned = plan(BatchRequest(job="june"))

    assert planned.files == 2 and planned.rows == 30
    assert [file.key for file in planned.unreadable] == [prefix + "semicolon.csv"]
    assert "';'" in planned.unreadable[0].reason and "','" in planned.unreadable[0].reason
