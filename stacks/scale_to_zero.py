"""Scale to zero: a model served as a SageMaker inference component on an endpoint whose
managed instance scaling may reach 0 instances (`-c ragchat:scale_to_zero=true`).

SageMaker's documented mechanism (Scale an endpoint to zero instances, SageMaker developer
guide): the inference component is a scalable target with a minimum of 0 copies; with no
copy left, managed instance scaling releases the last instance. A request to a component
with no copy fails and raises the `NoCapacityInvocationFailures` metric; an alarm on it
runs a step scaling policy that adds one copy, and managed instance scaling starts an
instance for it (minutes: the Lambda answers 503 `endpoint_not_ready` meanwhile).

Scale-in is a second step policy that sets the copy count to 0 once the component has had
no invocation and no refused invocation for the idle period (a metric-math alarm; no data
at all counts as idle). A refused invocation ends the idle streak at once, so a model that
is starting up for a waiting user is not scaled away."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Fn
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

Step = autoscaling.CfnScalingPolicy.StepAdjustmentProperty

NAMESPACE = "AWS/SageMaker"


@dataclass(frozen=True)
class ScaleToZero:
    """How one model is served as an inference component."""

    accelerators: int  # GPUs one copy needs (the tensor parallel degree)
    memory_mb: int  # host memory one copy needs
    idle_minutes: int  # no traffic this long: the copy (and then the instance) goes


def inference_component_config(
    scope: Construct, variant: str, instance_type: str, role: iam.IRole
) -> sagemaker.CfnEndpointConfig:
    """An endpoint configuration for inference components: no model in the variant, the
    execution role on the configuration, managed instance scaling between 0 and 1."""
    return sagemaker.CfnEndpointConfig(
        scope,
        "Config",
        execution_role_arn=role.role_arn,
        production_variants=[
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=variant,
                instance_type=instance_type,
                initial_instance_count=1,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED", min_instance_count=0, max_instance_count=1
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )
        ],
    )


class InferenceComponent(Construct):
    """The model as one inference component (one copy at first, then 0..1 by demand)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: sagemaker.CfnEndpoint,
        variant: str,
        model: sagemaker.CfnModel,
        spec: ScaleToZero,
        startup_timeout_seconds: int,
        download_timeout_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.component = sagemaker.CfnInferenceComponent(
            self,
            "Resource",
            endpoint_name=endpoint.attr_endpoint_name,
            variant_name=variant,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=model.attr_model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                    number_of_accelerator_devices_required=spec.accelerators,
                    min_memory_required_in_mb=spec.memory_mb,
                ),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=startup_timeout_seconds,
                    model_data_download_timeout_in_seconds=download_timeout_seconds,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(copy_count=1),
        )
        self.arn = self.component.attr_inference_component_arn
        # the generated name, from the ARN (…:inference-component/<name>): no attribute returns it
        self.name = Fn.select(1, Fn.split("/", self.arn))

        target = autoscaling.CfnScalableTarget(
            self,
            "Copies",
            service_namespace="sagemaker",
            resource_id=f"inference-component/{self.name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0,
            max_capacity=1,
        )
        scale_out = step_policy(
            self, "ScaleOutFromZero", "scale-out-from-zero", target, "ChangeInCapacity", cooldown=60,
            step=Step(metric_interval_lower_bound=0, scaling_adjustment=1),
        )  # fmt: skip
        dimensions = [cloudwatch.CfnAlarm.DimensionProperty(name="InferenceComponentName", value=self.name)]
        cloudwatch.CfnAlarm(
            self,
            "NoCapacity",
            alarm_description="A request found no model copy: start one (scale out from zero)",
            namespace=NAMESPACE,
            metric_name="NoCapacityInvocationFailures",
            dimensions=dimensions,
            statistic="Maximum",
            period=60,
            evaluation_periods=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[scale_out.ref],
        )

        scale_in = step_policy(
            self, "ScaleInToZero", "scale-in-to-zero", target, "ExactCapacity", cooldown=300,
            step=Step(metric_interval_upper_bound=0, scaling_adjustment=0),
        )  # fmt: skip

        def stat(metric_id: str, metric_name: str) -> cloudwatch.CfnAlarm.MetricDataQueryProperty:
            return cloudwatch.CfnAlarm.MetricDataQueryProperty(
                id=metric_id,
                return_data=False,
                metric_stat=cloudwatch.CfnAlarm.MetricStatProperty(
                    metric=cloudwatch.CfnAlarm.MetricProperty(
                        namespace=NAMESPACE, metric_name=metric_name, dimensions=dimensions
                    ),
                    period=60,
                    stat="Sum",
                ),
            )

        cloudwatch.CfnAlarm(
            self,
            "Idle",
            alarm_description=f"No request for {spec.idle_minutes} minutes: remove the model copy (scale in to zero)",
            metrics=[
                stat("invocations", "Invocations"),
                stat("refused", "NoCapacityInvocationFailures"),
                cloudwatch.CfnAlarm.MetricDataQueryProperty(
                    id="traffic",
                    expression="FILL(invocations, 0) + FILL(refused, 0)",
                    label="requests, served or refused",
                    return_data=True,
                ),
            ],
            evaluation_periods=spec.idle_minutes,
            datapoints_to_alarm=spec.idle_minutes,
            threshold=0,
            comparison_operator="LessThanOrEqualToThreshold",
            treat_missing_data="breaching",  # no data at all: nobody asked
            alarm_actions=[scale_in.ref],
        )


def step_policy(
    scope: Construct,
    policy_id: str,
    policy_name: str,
    target: autoscaling.CfnScalableTarget,
    adjustment_type: str,
    *,
    cooldown: int,
    step: Step,
) -> autoscaling.CfnScalingPolicy:
    """A one-step policy on the copy count, run by an alarm (the scale-out-from-zero pattern)."""
    return autoscaling.CfnScalingPolicy(
        scope,
        policy_id,
        policy_name=policy_name,
        policy_type="StepScaling",
        scaling_target_id=target.ref,
        step_scaling_policy_configuration=autoscaling.CfnScalingPolicy.StepScalingPolicyConfigurationProperty(
            adjustment_type=adjustment_type,
            metric_aggregation_type="Maximum",
            cooldown=cooldown,
            step_adjustments=[step],
        ),
    )
