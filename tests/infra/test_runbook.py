"""The runbook (docs/runbook.md) and the alarms of the synthesized template cannot drift apart:
every alarm links to a section of the page that exists, every section is an alarm's, every
dead-letter queue has an alarm, and every `mlops` command the page tells on-call to run exists
in the CLI, with the options it names."""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from aws_cdk import App, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from functions.common.config.alerts import DEFAULT_RUNBOOK_URL, RUNBOOK_URL_MAX_CHARS
from functions.common.config.loading import load_config
from infra.cdk.config import DeployConfig
from infra.cdk.constructs.alerts import ALARM_DESCRIPTION_MAX_CHARS, alarm
from infra.cdk.constructs.platform import Platform
from infra.cli.main import app

Resources = Callable[[str], dict[str, dict[str, Any]]]

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "runbook.md"
LINK = re.compile(r" Runbook: (?P<url>\S+)#(?P<anchor>[\w-]+)$")


def _slug(heading: str) -> str:
    """The anchor mkdocs' toc extension gives a heading (`markdown.extensions.toc.slugify`,
    its default): NFKD to ASCII, word characters, spaces and hyphens kept, lowercased,
    runs of spaces and hyphens made one hyphen."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _without_code_blocks(markdown: str) -> str:
    return re.sub(r"^[ \t]*```.*?^[ \t]*```", "", markdown, flags=re.S | re.M)


def _alarm_sections() -> dict[str, str]:
    """{anchor: heading} of the page's alarm sections (its level-3 headings)."""
    text = _without_code_blocks(RUNBOOK.read_text(encoding="utf-8"))
    headings = re.findall(r"^### (.+?)\s*$", text, flags=re.M)
    return {_slug(heading): heading for heading in headings}


def _alarms(resources: Resources) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources("AWS::CloudWatch::Alarm").items()}


def test_the_slug_is_the_one_mkdocs_gives() -> None:
    # What markdown.extensions.toc.slugify gives (the docs tools have it, this venv not).
    assert _slug("Header 1") == "header-1"
    assert _slug("Some Header with ! Special & Chars") == "some-header-with-special-chars"
    assert _slug("Ünïcödé --- hyphens") == "unicode-hyphens"
    assert _slug("DataDriftAlarm") == "datadriftalarm"


def test_every_alarm_links_to_its_runbook_section(resources: Resources) -> None:
    sections = _alarm_sections()
    alarms = _alarms(resources)
    assert len(alarms) >= 11
    for logical_id, alarm_properties in alarms.items():
        description = alarm_properties["AlarmDescription"]
        link = LINK.search(description)
        assert link, f"{logical_id}: no runbook link at the end of {description!r}"
        assert link["url"] == DEFAULT_RUNBOOK_URL
        assert link["anchor"] in sections, f"{logical_id}: no section #{link['anchor']}"
        # The section is named as the alarm is: `<scope><heading><8 hex digits>`.
        heading = sections[link["anchor"]]
        assert re.fullmatch(rf"[A-Z][A-Za-z0-9]*{heading}[0-9A-F]{{8}}", logical_id), heading
        assert len(description) <= ALARM_DESCRIPTION_MAX_CHARS
        # With the longest runbook_url the config accepts, it still fits CloudWatch's limit.
        longest = len(description) - len(DEFAULT_RUNBOOK_URL) + RUNBOOK_URL_MAX_CHARS
        assert longest <= ALARM_DESCRIPTION_MAX_CHARS, logical_id


def test_every_runbook_section_is_an_alarm_of_the_template(
    resources: Resources, shadow_template: dict[str, Any]
) -> None:
    """Of the default template, or of the shadow scorer's (built only with `[serving] shadow
    = true`)."""
    shadow_alarms = {
        k: v["Properties"]
        for k, v in shadow_template["Resources"].items()
        if v["Type"] == "AWS::CloudWatch::Alarm" and k.startswith("Shadow")
    }
    alarms = {**_alarms(resources), **shadow_alarms}
    links = [LINK.search(a["AlarmDescription"]) for a in alarms.values()]
    linked = {link["anchor"] for link in links if link}
    sections = _alarm_sections()
    stale = {sections[anchor] for anchor in set(sections) - linked}
    assert not stale, f"runbook sections of no alarm in the template: {sorted(stale)}"
    assert len(sections) == len(alarms)


def _dead_letter_queues(resources: Resources) -> set[str]:
    """Every queue a rule target or an asynchronous invocation sends its failures to."""
    arns = [
        target["DeadLetterConfig"]["Arn"]
        for rule in resources("AWS::Events::Rule").values()
        for target in rule["Properties"].get("Targets", [])
        if "DeadLetterConfig" in target
    ] + [
        config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        for config in resources("AWS::Lambda::EventInvokeConfig").values()
        if "OnFailure" in config["Properties"].get("DestinationConfig", {})
    ]
    return {arn["Fn::GetAtt"][0] for arn in arns}


def test_every_dead_letter_queue_has_an_alarm_on_the_alerts_topic(
    resources: Resources,
) -> None:
    queues = _dead_letter_queues(resources)
    assert {re.sub(r"[0-9A-F]{8}$", "", q) for q in queues} == {
        "PipelineUndeliveredDrops",
        "BatchUndeliveredStarts",
        "MonitoringUndeliveredEvents",
        "MonitoringFailedDriftChecks",
        "CanaryUndeliveredCaptureEvents",
        "CanaryFailedCanaryCounts",
    }
    [topic_id] = resources("AWS::SNS::Topic")
    for queue_id in queues:
        on_queue = [
            a
            for a in _alarms(resources).values()
            if a.get("Namespace") == "AWS/SQS"
            and a["Dimensions"]
            == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        ]
        assert len(on_queue) == 1, queue_id
        [properties] = on_queue
        assert properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert properties["Threshold"] == 1 and properties["EvaluationPeriods"] == 1
        assert properties["AlarmActions"] == [{"Ref": topic_id}]


def test_cloudwatch_may_use_the_alerts_key_to_publish(resources: Resources) -> None:
    [(topic_id, topic)] = resources("AWS::SNS::Topic").items()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    statements = resources("AWS::KMS::Key")[key_id]["Properties"]["KeyPolicy"]["Statement"]
    allowed = {
        action
        for s in statements
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed, topic_id


def _deploy(runbook_url: str) -> DeployConfig:
    config = load_config(REPO / "mlops.toml")
    alerts = config.alerts.model_copy(update={"runbook_url": runbook_url})
    config = config.model_copy(update={"alerts": alerts})
    return DeployConfig(config=config, stage="dev", commit="abc123def456")


def _one_alarm(runbook_url: str, means: str) -> str:
    stack = Stack(App(), "Alarms")
    topic = sns.Topic(stack, "Topic")
    # Only the deployment settings and the topic are used by an alarm.
    platform = Platform(_deploy(runbook_url), None, None, topic)  # type: ignore[arg-type]
    metric = cloudwatch.Metric(namespace="mlops", metric_name="Anything")
    alarm(stack, "SomethingAlarm", metric, platform=platform, means=means)
    [props] = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    return str(props["Properties"]["AlarmDescription"])


def test_the_runbook_link_follows_the_config() -> None:
    url = "https://ops.example.com/mlops/runbook/"
    assert _one_alarm(url, "Something happened.") == (
        f"Something happened. Runbook: {url}#somethingalarm"
    )


def test_a_description_over_cloudwatchs_limit_fails_synth_naming_the_alarm() -> None:
    with pytest.raises(ValueError, match=r"alarm SomethingAlarm: .* over CloudWatch's 1024"):
        _one_alarm("https://ops.example.com/runbook/", "x" * 1000)


# --- the commands the page names ----------------------------------------------------------

ROOT = typer.main.get_command(app)
# `mlops dlq` is being added on another branch (s24-dlq) at the same time as this page: until
# it is in the CLI, its commands are checked against the contract agreed for it.
DLQ_CONTRACT = {
    "subcommands": {"list", "show", "redrive"},
    "queues": {"drops", "batch-starts", "monitoring-events", "failed-drift-checks"},
    "options": {"--json", "--limit", "--dry-run", "--aws", "--local", "--stage", "--state-dir"},
}


def _commands(markdown: str) -> Iterator[list[str]]:
    """Every `mlops ...` command line in the page's code blocks and inline code, as words."""
    blocks = re.findall(r"^[ \t]*```.*?\n(.*?)^[ \t]*```", markdown, flags=re.S | re.M)
    lines = [line for block in blocks for line in block.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", _without_code_blocks(markdown))
    for line in lines:
        for found in re.finditer(r"(?<![\w-])mlops\s+(.*)", line):
            words = shlex.split(found[1], comments=True)
            if words:
                yield words


def _placeholder(word: str) -> bool:
    return word.startswith(("<", "$", '"'))


def _problems(words: list[str]) -> list[str]:
    # Typer builds on its own copy of click: its classes are told apart by what they have.
    command: Any = ROOT
    path = ["mlops"]
    while hasattr(command, "commands"):
        if not words or words[0].startswith("-"):
            return [f"`{' '.join(path)}` is a group: name one of its commands"]
        name, words = words[0], words[1:]
        found = command.commands.get(name)
        if found is None:
            if path == ["mlops"] and name == "dlq":
                return _dlq_problems(words)
            return [f"`{' '.join(path)}` has no command {name!r}"]
        command, path = found, [*path, name]
    options = {o: p for p in command.params for o in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    given: list[str] = []
    problems = []
    while words:
        word, words = words[0], words[1:]
        if word.startswith("--"):
            param = options.get(word.split("=")[0])
            if param is None or param.param_type_name != "option":
                problems.append(f"`{' '.join(path)}` has no option {word}")
            elif not param.is_flag and "=" not in word:
                words = words[1:]
        else:
            given.append(word)
    if len(given) > len(arguments):
        problems.append(f"`{' '.join(path)}` takes {len(arguments)} argument(s): {given}")
    if len(given) < sum(a.required for a in arguments):
        problems.append(f"`{' '.join(path)}` needs its argument(s)")
    for argument, word in zip(arguments, given, strict=False):
        choices = getattr(getattr(argument, "type", None), "choices", None)
        if choices is not None and not _placeholder(word) and word not in choices:
            problems.append(f"`{' '.join(path)}`: {word!r} is not one of {list(choices)}")
    return problems


def _dlq_problems(words: list[str]) -> list[str]:
    subcommand, rest = (words[0], words[1:]) if words else ("", [])
    if subcommand not in DLQ_CONTRACT["subcommands"]:
        return [f"no `mlops dlq {subcommand}` in {sorted(DLQ_CONTRACT['subcommands'])}"]
    problems, queues = [], []
    while rest:
        word, rest = rest[0], rest[1:]
        if not word.startswith("-"):
            queues.append(word)
        elif word.split("=")[0] not in DLQ_CONTRACT["options"]:
            problems.append(f"`mlops dlq {subcommand}` has no option {word}")
        elif word in ("--limit", "--stage", "--state-dir"):
            rest = rest[1:]
    wanted = 0 if subcommand == "list" else 1
    if len(queues) != wanted or not set(queues) <= DLQ_CONTRACT["queues"]:
        problems.append(f"`mlops dlq {subcommand}` takes {wanted} queue(s) of the four: {queues}")
    return problems


def test_every_mlops_command_the_runbook_names_exists_with_its_options() -> None:
    commands = list(_commands(RUNBOOK.read_text(encoding="utf-8")))
    assert len(commands) > 30
    problems = [f"mlops {' '.join(words)}: {p}" for words in commands for p in _problems(words)]
    assert not problems, "\n".join(problems)
    named = {" ".join(words[:2]) for words in commands}
    assert {"dlq redrive", "runs start", "models rollback", "drift run", "drops show"} <= named


def test_the_command_check_finds_what_does_not_exist() -> None:
    assert _problems(["runs", "list", "--wide"]) == []
    assert _problems(["runs", "start", "--reason", "why", "--aws", "--stage", "prod"]) == []
    assert _problems(["runs"]) == ["`mlops runs` is a group: name one of its commands"]
    assert _problems(["runs", "delete"]) == ["`mlops runs` has no command 'delete'"]
    assert _problems(["runs", "list", "--colour"]) == ["`mlops runs list` has no option --colour"]
    assert _problems(["drops", "show"]) == ["`mlops drops show` needs its argument(s)"]
    assert _problems(["models", "history", "extra"]) == [
        "`mlops models history` takes 0 argument(s): ['extra']"
    ]
