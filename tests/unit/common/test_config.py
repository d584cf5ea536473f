"""The config file users edit: good files load, bad ones name file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.dataset import DatasetMode, FeatureType, Task
from functions.common.config.loading import (
    CONFIG_JSON_ENV,
    MlopsConfig,
    deployed_config,
    load_config,
)

REPO = Path(__file__).resolve().parents[3]
MINIMAL = """
[dataset]
name = "sales"
target = "amount"
task = "regression"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlops.toml"
    path.write_text(text)
    return path


def test_repo_config_loads() -> None:
    config = load_config(REPO / "mlops.toml")
    assert config.dataset.name == "churn"
    assert config.dataset.task is Task.CLASSIFICATION
    assert config.dataset.features is not None
    assert config.dataset.features["contract"] is FeatureType.CATEGORICAL
    assert config.stack_name("dev") == "mlops-dev"


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.dataset.mode is DatasetMode.APPEND
    assert config.dataset.features is None  # inferred from the first good drop
    assert list(config.stages) == ["dev"]
    assert config.project.name == "mlops"


def test_env_var_names_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, MINIMAL)
    monkeypatch.setenv("MLOPS_CONFIG", str(path))
    assert load_config().dataset.name == "sales"


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('task = "regression"', 'task = "ranking"'), "dataset.task", "classification"),
        (('name = "sales"', 'name = "Sales Data"'), "dataset.name", "pattern"),
        (('target = "amount"', 'target = "amount"\nmin_rows = 1'), "dataset.min_rows", "2"),
        (('target = "amount"', 'target = "amount"\ncolour = "red"'), "dataset.colour", "Extra"),
        (
            ('target = "amount"', 'target = "amount"\nmax_null_share = 1.5'),
            "dataset.max_null_share",
            "1",
        ),
    ],
)
def test_invalid_values_name_file_key_and_problem(
    tmp_path: Path, change: tuple[str, str], key: str, problem: str
) -> None:
    path = _write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert key in message
    assert problem in message


def test_target_listed_as_a_feature_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL + '\n[dataset.features]\namount = "numeric"\n'
    with pytest.raises(ConfigError, match="target 'amount' must not also be listed"):
        load_config(_write(tmp_path, text))


def test_feature_names_must_be_normalised_names(tmp_path: Path) -> None:
    text = MINIMAL + '\n[dataset.features]\n"Unit Price" = "numeric"\n'
    with pytest.raises(ConfigError, match="lower_snake_case"):
        load_config(_write(tmp_path, text))


def test_missing_dataset_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset: Field required"):
        load_config(_write(tmp_path, '[project]\nname = "x1"\n'))


def test_not_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[dataset\nname="))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_unknown_stage_lists_the_configured_ones(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"stage 'prod' is not configured.*known: dev"):
        config.stage("prod")


def test_functions_read_the_deployed_json(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_config(REPO / "mlops.toml")
    monkeypatch.setenv(CONFIG_JSON_ENV, original.to_json())
    deployed_config.cache_clear()
    try:
        assert deployed_config() == original
    finally:
        deployed_config.cache_clear()


def test_broken_deployed_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_JSON_ENV, '{"dataset": {"name": "x"}}')
    deployed_config.cache_clear()
    try:
        with pytest.raises(
            ConfigError, match=r"(?s)\$MLOPS_CONFIG_JSON.*dataset.target: Field required"
        ):
            deployed_config()
    finally:
        deployed_config.cache_clear()


def test_config_round_trips_through_json() -> None:
    config = load_config(REPO / "mlops.toml")
    assert MlopsConfig.model_validate_json(config.to_json()) == config


def test_estimator_defaults_per_task_and_must_fit_the_task(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, MINIMAL)).estimator == "linear_regression"
    text = MINIMAL + '\n[model]\nestimator = "logistic_regression"\n'
    with pytest.raises(ConfigError, match="not available for regression; choose one of"):
        load_config(_write(tmp_path, text))


def test_gate_uses_mlflow_metric_threshold_fields(tmp_path: Path) -> None:
    text = MINIMAL + "\n[gate.metrics.rmse]\nthreshold = 10.0\nmin_relative_change = 0.05\n"
    gate = load_config(_write(tmp_path, text)).gate
    assert gate.metrics["rmse"].min_relative_change == 0.05
    with pytest.raises(ConfigError, match="gate.metrics.rmse.min_absolute_change"):
        load_config(_write(tmp_path, text + "min_absolute_change = -1\n"))


def test_grid_search_is_kept_small(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "\n[model.grid]\nalpha = [1, 2, 3, 4, 5, 6, 7, 8]\n"
        + "fit_intercept = [1, 2, 3, 4, 5, 6, 7]\n"
    )
    with pytest.raises(ConfigError, match="56 combinations"):
        load_config(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("drift", "problem"),
    [
        ('schedule = "daily"', "drift.schedule"),
        ("psi = [0.3, 0.1]", "drift.psi: minor 0.3 must not exceed major 0.1"),
        ("min_rows = 5000", "must not exceed large_window"),
        ('critical_features = ["price"]', "drift.critical_features names column(s) not in"),
        ('sensitive = { units = "hash" }', "drift.sensitive moved to [dataset] sensitive"),
        ('data_quality_fail = "always"', "drift.data_quality_fail"),
    ],
)
def test_bad_drift_settings_name_the_key(tmp_path: Path, drift: str, problem: str) -> None:
    text = MINIMAL + '\n[dataset.features]\nunits = "numeric"\n\n[drift]\n' + drift + "\n"
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text))
    assert problem in str(error.value)


def test_drift_settings_load_with_their_thresholds(tmp_path: Path) -> None:
    text = MINIMAL + (
        '\n[dataset.features]\nunits = "numeric"\nstore = "categorical"\n\n[drift]\n'
        'schedule = "cron(0 6 * * ? *)"\nauto_retrain = true\nwindow_hours = 24\n'
        'js = [0.05, 0.15]\ncritical_features = ["units"]\n'
        'retrain_schedule = "rate(7 days)"\n'
    )
    drift = load_config(_write(tmp_path, text)).drift
    assert drift.schedule == "cron(0 6 * * ? *)" and drift.auto_retrain is True
    assert drift.js == (0.05, 0.15) and drift.window_hours == 24
    assert drift.critical_features == ["units"]
    assert drift.retrain_schedule == "rate(7 days)"
    assert drift.data_quality_fail == "major"


@pytest.mark.parametrize(
    ("sensitive", "problem"),
    [
        ('email = "encrypt"', "dataset.sensitive.email"),
        ('email = "hash"', "dataset.sensitive names column(s) not in dataset.features: ['email']"),
        ('amount = "drop"', "dataset.sensitive names the target 'amount'"),
    ],
)
def test_sensitive_columns_must_be_features(tmp_path: Path, sensitive: str, problem: str) -> None:
    text = MINIMAL + '\n[dataset.features]\nunits = "numeric"\n\n[dataset.sensitive]\n' + sensitive
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text + "\n"))
    assert problem in str(error.value)


def test_sensitive_columns_and_salt_load_and_a_dropped_column_is_not_critical(
    tmp_path: Path,
) -> None:
    text = MINIMAL + (
        'hash_salt = "s3cret"\n\n[dataset.features]\nunits = "numeric"\nstore = "categorical"\n'
        '\n[dataset.sensitive]\nstore = "hash"\nunits = "drop"\n'
    )
    dataset = load_config(_write(tmp_path, text)).dataset
    assert dataset.sensitive == {"store": "hash", "units": "drop"}
    assert dataset.hash_salt == "s3cret"
    with pytest.raises(ConfigError, match="critical_features names column.s. dataset.sensitive"):
        load_config(_write(tmp_path, text + '\n[drift]\ncritical_features = ["units"]\n'))


def test_data_protection_settings_default_and_load(tmp_path: Path) -> None:
    lake = load_config(_write(tmp_path, MINIMAL)).data_lake
    assert (lake.kms_key, lake.capture_retention_days, lake.feedback_retention_days) == (
        False,
        90,
        365,
    )
    text = MINIMAL + "\n[data_lake]\nkms_key = true\ncapture_retention_days = 30\n"
    lake = load_config(_write(tmp_path, text)).data_lake
    assert lake.kms_key is True and lake.capture_retention_days == 30
    with pytest.raises(ConfigError, match="capture_retention_days 7 expires capture"):
        load_config(_write(tmp_path, MINIMAL + "\n[data_lake]\ncapture_retention_days = 7\n"))


def test_a_stage_overrides_sections_for_its_stack_only(tmp_path: Path) -> None:
    text = MINIMAL + (
        "\n[stages.dev]\n"
        "\n[stages.prod]\nlog_retention_days = 365\n"
        '\n[stages.prod.serving]\nmemory_mb = 2048\nauth = "api_key"\n'
        '\n[stages.prod.drift]\nschedule = "rate(6 hours)"\npsi = [0.05, 0.2]\n'
        "\n[drift]\ncooldown_hours = 12\n"
    )
    config = load_config(_write(tmp_path, text))
    dev, prod = config.for_stage("dev"), config.for_stage("prod")

    assert dev.serving.memory_mb == 1024 and dev.drift.schedule == "rate(1 day)"
    assert prod.serving.memory_mb == 2048 and prod.serving.auth == "api_key"
    assert prod.drift.schedule == "rate(6 hours)" and prod.drift.psi == (0.05, 0.2)
    # Keys the stage does not override keep the base value.
    assert prod.drift.cooldown_hours == 12 and prod.serving.max_batch_rows == 1_000
    assert prod.stage("prod").log_retention_days == 365
    assert prod.stage("prod").overrides() == {}


def test_a_bad_stage_override_names_the_stage_section_and_key(tmp_path: Path) -> None:
    text = MINIMAL + "\n[stages.prod]\n\n[stages.prod.serving]\nmemory_mb = 64\n"
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text))
    message = str(error.value)
    assert "stages.prod.serving.memory_mb" in message
    assert "greater than or equal to 128" in message


def test_an_override_of_an_unknown_section_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '\n[stages.prod]\n\n[stages.prod.dataset]\ntarget = "other"\n'
    with pytest.raises(ConfigError, match="stages.prod.dataset"):
        load_config(_write(tmp_path, text))


def test_a_stage_names_its_restored_registry_table(tmp_path: Path) -> None:
    restored = "mlops-prod-RegistryTable1A2B-XYZ-restored-20261202T063000Z"
    text = MINIMAL + f'\n[stages.dev]\n\n[stages.prod]\nregistry_table = "{restored}"\n'
    config = load_config(_write(tmp_path, text))

    assert config.for_stage("prod").stage("prod").registry_table == restored
    assert config.for_stage("dev").stage("dev").registry_table is None

    bad = MINIMAL + '\n[stages.prod]\nregistry_table = "no spaces allowed"\n'
    with pytest.raises(ConfigError, match="stages.prod.registry_table"):
        load_config(_write(tmp_path, bad))


def test_reserved_concurrency_has_protective_defaults_and_bounds(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.ingest.reserved_concurrency == 10
    assert config.train.reserved_concurrency == 5
    configured = (
        MINIMAL + "\n[ingest]\nreserved_concurrency = 25\n[train]\nreserved_concurrency = 4\n"
    )
    config = load_config(_write(tmp_path, configured))
    assert (config.ingest.reserved_concurrency, config.train.reserved_concurrency) == (25, 4)
    # 0 would stop the stage for good (Lambda throttles every invocation)
    with pytest.raises(
        ConfigError, match=r"ingest.reserved_concurrency[\s\S]*greater than or equal to 1"
    ):
        load_config(_write(tmp_path, MINIMAL + "\n[ingest]\nreserved_concurrency = 0\n"))
    # the pipeline's reserves together stay well inside an account's default 1,000
    with pytest.raises(
        ConfigError, match=r"train.reserved_concurrency[\s\S]*less than or equal to 100"
    ):
        load_config(_write(tmp_path, MINIMAL + "\n[train]\nreserved_concurrency = 101\n"))


def test_the_runbook_link_base_defaults_to_the_repository_page_and_takes_an_http_url(
    tmp_path: Path,
) -> None:
    assert load_config(_write(tmp_path, MINIMAL)).alerts.runbook_url == "docs/runbook.md"
    text = MINIMAL + '\n[alerts]\nrunbook_url = "https://ops.example.com/mlops/runbook/"\n'
    assert load_config(_write(tmp_path, text)).alerts.runbook_url == (
        "https://ops.example.com/mlops/runbook/"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("docs/runbook/", "is not an http(s) URL"),
        ("/srv/docs/runbook.md", "is not an http(s) URL"),
        ("ftp://ops.example.com/runbook/", "is not an http(s) URL"),
        ("https://ops.example.com/runbook/#top", "has a #fragment"),
        ("https://ops.example.com/run book/", "contains whitespace"),
        ("https://ops.example.com/" + "x" * 400, "at most 400 characters"),
    ],
)
def test_a_bad_runbook_url_is_named(tmp_path: Path, url: str, problem: str) -> None:
    path = _write(tmp_path, MINIMAL + f'\n[alerts]\nrunbook_url = "{url}"\n')
    with pytest.raises(ConfigError, match=r"alerts\.runbook_url") as error:
        load_config(path)
    assert problem in str(error.value)
