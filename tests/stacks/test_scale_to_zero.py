"""`-c ragchat:scale_to_zero=true`: the GPU models are inference components on endpoints
whose managed instance scaling reaches 0; each component scales out from zero on
`NoCapacityInvocationFailures` (SageMaker's documented mechanism) and back to zero after
the idle period. The embedding endpoint and a JumpStart model package stay classic."""

import json

import pytest

from cdk_helpers import cfn_lint_errors, resources, synth, synth_once


@pytest.fixture(scope="module")
def zero():
    return synth_once(scale_to_zero=True, scale_to_zero_idle_minutes=45)


def by_prefix(template: dict, kind: str, prefix: str) -> dict:
    (item,) = [v for k, v in resources(template, kind).items() if k.startswith(prefix)]
    return item


@pytest.mark.parametrize(("construct", "gpus"), [("ChatLlm", 4), ("ModerationLlm", 1)])
def test_gpu_models_are_inference_components_on_endpoints_that_reach_zero(zero, construct, gpus):
    template, _ = zero
    config = by_prefix(template, "AWS::SageMaker::EndpointConfig", construct)
    (variant,) = config["ProductionVariants"]
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1}
    assert "ModelName" not in variant and "ExecutionRoleArn" in config
    component = by_prefix(template, "AWS::SageMaker::InferenceComponent", construct)
    assert component["Specification"]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"] == gpus
    assert component["Specification"]["ModelName"]["Fn::GetAtt"][0].startswith(f"{construct}Model")
    assert component["RuntimeConfig"] == {"CopyCount": 1}, "the first deploy loads the model once"
    target = by_prefix(template, "AWS::ApplicationAutoScaling::ScalableTarget", f"{construct}Component")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 1)
    assert target["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"


def alarm_for(template: dict, policy_prefix: str) -> dict:
    (policy,) = [
        k for k in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy") if k.startswith(policy_prefix)
    ]
    (alarm,) = [
        a for a in resources(template, "AWS::CloudWatch::Alarm").values() if a.get("AlarmActions") == [{"Ref": policy}]
    ]
    return alarm


def test_scale_out_from_zero_is_a_step_policy_on_no_capacity_failures(zero):
    template, _ = zero
    policy = by_prefix(template, "AWS::ApplicationAutoScaling::ScalingPolicy", "ChatLlmComponentScaleOutFromZero")
    steps = policy["StepScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "StepScaling" and steps["AdjustmentType"] == "ChangeInCapacity"
    assert steps["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarm = alarm_for(template, "ChatLlmComponentScaleOutFromZero")
    assert alarm["MetricName"] == "NoCapacityInvocationFailures" and alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["Dimensions"][0]["Name"] == "InferenceComponentName"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


def test_scale_in_to_zero_after_the_idle_period_unless_a_request_was_refused(zero):
    template, _ = zero
    policy = by_prefix(template, "AWS::ApplicationAutoScaling::ScalingPolicy", "ChatLlmComponentScaleInToZero")
    steps = policy["StepScalingPolicyConfiguration"]
    assert steps["AdjustmentType"] == "ExactCapacity"
    assert steps["StepAdjustments"] == [{"MetricIntervalUpperBound": 0, "ScalingAdjustment": 0}]
    alarm = alarm_for(template, "ChatLlmComponentScaleInToZero")
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 45
    assert alarm["TreatMissingData"] == "breaching", "no data at all means nobody asked"
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert names == {"Invocations", "NoCapacityInvocationFailures"}
    assert expression["Expression"] == "FILL(invocations, 0) + FILL(refused, 0)"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanOrEqualToThreshold", 0)


def test_the_lambda_invokes_the_components_and_may_only_call_those(zero):
    template, _ = zero
    (function,) = resources(template, "AWS::Lambda::Function").values()
    env = function["Environment"]["Variables"]
    assert "RAGCHAT_CHAT_INFERENCE_COMPONENT" in env and "RAGCHAT_MODERATION_INFERENCE_COMPONENT" in env
    assert "RAGCHAT_EMBEDDING_INFERENCE_COMPONENT" not in env
    assert env["RAGCHAT_MODEL_START_SECONDS"] == "600", "the slower of the two: GPT-NeoXT's start"
    statements = [s for p in resources(template, "AWS::IAM::Policy").values() for s in p["PolicyDocument"]["Statement"]]
    (invoke,) = [s for s in statements if "sagemaker:InvokeEndpoint" in s["Action"]]
    resources_ = json.dumps(invoke["Resource"])
    assert resources_.count('"InferenceComponentArn"') == 2 and resources_.count('"Ref"') == 3  # + 3 endpoints


def test_the_embedding_endpoint_stays_a_classic_cpu_endpoint(zero, default_template):
    template, _ = zero
    embedding = by_prefix(template, "AWS::SageMaker::EndpointConfig", "Embedding")
    assert embedding == by_prefix(default_template, "AWS::SageMaker::EndpointConfig", "Embedding")


def test_a_jumpstart_model_package_stays_a_classic_endpoint():
    template, _ = synth(chat_model="llama-2-chat", accept_llama2_eula=True, scale_to_zero=True)
    (component,) = resources(template, "AWS::SageMaker::InferenceComponent")
    assert component.startswith("ModerationLlm")
    chat = by_prefix(template, "AWS::SageMaker::EndpointConfig", "ChatLlm")
    assert (
        chat["ProductionVariants"][0]["InitialInstanceCount"] == 1
        and "ManagedInstanceScaling" not in chat["ProductionVariants"][0]
    )


@pytest.mark.parametrize("settings", [{}, {"chat_model": "flan-t5", "moderation": "comprehend"}])
def test_scale_to_zero_is_cdk_nag_and_cfn_lint_clean(settings, zero):
    _, outdir = zero if not settings else synth(scale_to_zero=True, **settings)
    errors, output = cfn_lint_errors(list(outdir.glob("*.template.json")))
    assert errors == [], output


def test_monitoring_follows_the_components(zero):
    template, _ = zero
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    gpu = [a for a in alarms if a.get("MetricName") == "GPUMemoryUtilizationNormalized"]
    assert len(gpu) == 2 and all(a["Namespace"] == "/aws/sagemaker/InferenceComponents" for a in gpu)
