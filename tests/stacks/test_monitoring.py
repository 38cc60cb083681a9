"""Alarms on every hop of the request path, one SNS topic they all notify (with an optional
e-mail subscription), and one dashboard."""

import json

from cdk_helpers import resources, synth


def alarms(template: dict) -> dict[str, dict]:
    return {
        name.removeprefix("Monitoring"): props for name, props in resources(template, "AWS::CloudWatch::Alarm").items()
    }


def metric_of(alarm: dict) -> tuple[str, str]:
    if "MetricName" in alarm:
        return alarm["Namespace"], alarm["MetricName"]
    names = {(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
             for m in alarm["Metrics"] if "MetricStat" in m}  # fmt: skip
    return sorted(names)[0]


def test_every_hop_has_its_alarm_and_all_notify_the_topic(default_template):
    found = {metric_of(a) for a in alarms(default_template).values()}
    expected = {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "Duration"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
        ("RagChat", "ServerErrors"),
        ("RagChat", "RetrievalUnavailable"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
        ("AWS/SageMaker", "ModelLatency"),
        ("/aws/sagemaker/Endpoints", "GPUMemoryUtilization"),
    }
    assert expected <= found, expected - found
    (topic,) = resources(default_template, "AWS::SNS::Topic")
    for name, alarm in alarms(default_template).items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
        assert alarm["TreatMissingData"] == "notBreaching", name
    assert resources(default_template, "AWS::SNS::Subscription") == {}


def test_endpoint_alarms_cover_each_endpoint_and_gpu_memory_only_the_gpu_ones(default_template):
    names = set(alarms(default_template))
    for endpoint in ("Chat", "Moderation", "Embedding"):
        assert any(n.startswith(f"{endpoint}Endpoint5xx") for n in names), endpoint
        assert any(n.startswith(f"{endpoint}ModelLatency") for n in names), endpoint
    gpu = sorted(n.split("GpuMemory")[0] for n in names if "GpuMemory" in n)
    assert gpu == ["Chat", "Moderation"]


def test_duration_alarm_is_near_the_timeout_and_service_metrics_carry_the_powertools_dimension(default_template):
    by_metric = {metric_of(a): a for a in alarms(default_template).values()}
    duration = by_metric[("AWS/Lambda", "Duration")]
    assert duration["Threshold"] == 0.9 * 300 * 1000 and duration["ExtendedStatistic"] == "p99"
    server_errors = by_metric[("RagChat", "ServerErrors")]
    assert server_errors["Dimensions"] == [{"Name": "service", "Value": "RagChat"}]  # the stack's name


def test_alarm_email_subscribes_to_the_topic():
    template, _ = synth(alarm_email="oncall@example.com")
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "oncall@example.com"


def test_one_dashboard_shows_the_request_path(default_template):
    (dashboard,) = resources(default_template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["DashboardBody"])
    for needle in ("AWS/Lambda", "RagChat", "GenerationLatency", "AWS/SageMaker", "AWS/DynamoDB", "alarm"):
        assert needle in body, needle


def test_the_wikipedia_retrieval_endpoint_is_watched_like_the_embedding_one():
    """A CPU endpoint: 5xx and latency alarms (within the Lambda's 5 s retrieval wait), no GPU alarm."""
    template, _ = synth(knowledge_base="wikipedia", wikipedia_s3_uri="s3://my-bucket/wiki/")
    names = set(alarms(template))
    assert {n for n in names if n.startswith("WikipediaEndpoint5xx")} and not [n for n in names if "Embedding" in n]
    (latency,) = [a for n, a in alarms(template).items() if n.startswith("WikipediaModelLatency")]
    assert latency["Threshold"] == 5_000_000
    assert not [n for n in names if n.startswith("WikipediaGpu")]
