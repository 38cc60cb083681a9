"""Alarms and one dashboard for the request path: Function URL -> Lambda -> SageMaker
endpoints and DynamoDB, plus the chat service's own metrics (namespace `RagChat`,
dimension `service` = the stack's name, written by `ragchat.aws.observability`), so two stacks
in one account and region never alarm on each other's metrics.

Every alarm notifies one SNS topic; `-c ragchat:alarm_email=you@example.com` subscribes an
address (SNS mails a confirmation link first). Missing data is never an alarm: an idle,
scaled-to-zero or parked deployment emits nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

SERVICE_NAMESPACE = "RagChat"
FIVE_MINUTES = Duration.minutes(5)
# ModelLatency is reported in microseconds.
# Wikipedia retrieval: the Lambda waits 5 s for retrieval by default (retrieval_timeout_seconds).
MODEL_LATENCY_ALARM_US = {"chat": 60_000_000, "moderation": 5_000_000, "embedding": 1_000_000, "wikipedia": 5_000_000}
GPU_MEMORY_ALARM_PERCENT = 90
DURATION_NEAR_TIMEOUT = 0.9  # p99 duration above 90% of the Lambda timeout


@dataclass(frozen=True)
class MonitoredEndpoint:
    """What CloudWatch needs to find one endpoint's metrics."""

    name: str  # chat, moderation, embedding
    dimensions: Mapping[str, str]  # EndpointName + VariantName, or InferenceComponentName
    gpu: bool

    @property
    def gpu_memory(self) -> tuple[str, str]:
        """(namespace, metric) of GPU memory use: per variant, or normalized per component."""
        if "InferenceComponentName" in self.dimensions:
            return "/aws/sagemaker/InferenceComponents", "GPUMemoryUtilizationNormalized"
        return "/aws/sagemaker/Endpoints", "GPUMemoryUtilization"


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        timeout: Duration,
        table: dynamodb.ITable,
        endpoints: list[MonitoredEndpoint],
        service: str,
        alarm_email: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = service  # the `service` dimension of the chat service's metrics
        self.topic = sns.Topic(self, "Alarms", display_name="RAG chat alarms", enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []

        invocations = function.metric_invocations(period=FIVE_MINUTES, statistic="Sum")
        errors = function.metric_errors(period=FIVE_MINUTES, statistic="Sum")
        throttles = function.metric_throttles(period=FIVE_MINUTES, statistic="Sum")
        duration = function.metric_duration(period=FIVE_MINUTES, statistic="p99")
        self._alarm("LambdaErrors", errors, 1, "the chat Lambda failed invocations (crashes, timeouts)")
        self._alarm("LambdaThrottles", throttles, 1, "chat requests were throttled (reserved concurrency reached)")
        self._alarm(
            "LambdaDurationNearTimeout",
            duration,
            timeout.to_milliseconds() * DURATION_NEAR_TIMEOUT,
            "p99 duration is above 90% of the Lambda timeout: replies are about to be cut off",
        )

        server_errors = self._service_metric("ServerErrors")
        retrieval = self._service_metric("RetrievalUnavailable")
        self._alarm("ServerErrors", server_errors, 1, "the chat service answered 5xx (see the step in its logs)")
        self._alarm("RetrievalUnavailable", retrieval, 1, "answers were given without context: Pinecone failed")

        table_throttles = cloudwatch.MathExpression(
            expression="FILL(r, 0) + FILL(w, 0)",
            using_metrics={
                "r": table.metric("ReadThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
                "w": table.metric("WriteThrottleEvents", period=FIVE_MINUTES, statistic="Sum"),
            },
            label="DynamoDB throttle events",
            period=FIVE_MINUTES,
        )
        self._alarm("DynamoDbThrottles", table_throttles, 1, "the conversation table throttled reads or writes")

        endpoint_widgets: list[cloudwatch.IWidget] = []
        for endpoint in endpoints:
            title = endpoint.name.capitalize()
            dims = dict(endpoint.dimensions)
            errors_5xx = self._sagemaker("Invocation5XXErrors", dims, "Sum")
            latency = self._sagemaker("ModelLatency", dims, "p90")
            self._alarm(f"{title}Endpoint5xx", errors_5xx, 1, f"the {endpoint.name} endpoint answered 5xx")
            self._alarm(
                f"{title}ModelLatency",
                latency,
                MODEL_LATENCY_ALARM_US[endpoint.name],
                f"the {endpoint.name} model's p90 latency is above {MODEL_LATENCY_ALARM_US[endpoint.name] / 1e6:g} s",
                periods=3,
            )
            charts = [
                cloudwatch.GraphWidget(
                    title=f"{title} endpoint: invocations and 5xx",
                    left=[self._sagemaker("Invocations", dims, "Sum"), errors_5xx],
                ),
                cloudwatch.GraphWidget(title=f"{title} endpoint: model latency p90 (us)", left=[latency]),
            ]
            if endpoint.gpu:
                namespace, metric_name = endpoint.gpu_memory
                gpu_memory = cloudwatch.Metric(
                    namespace=namespace,
                    metric_name=metric_name,
                    dimensions_map=dims,
                    statistic="Maximum",
                    period=FIVE_MINUTES,
                )
                self._alarm(
                    f"{title}GpuMemory",
                    gpu_memory,
                    GPU_MEMORY_ALARM_PERCENT,
                    f"the {endpoint.name} endpoint's GPU memory is above {GPU_MEMORY_ALARM_PERCENT}%",
                    periods=3,
                )
                charts.append(cloudwatch.GraphWidget(title=f"{title} endpoint: GPU memory %", left=[gpu_memory]))
            endpoint_widgets.extend(charts)

        steps = ("RetrievalLatency", "ModerationInputLatency", "GenerationLatency", "StoreLatency", "TurnLatency")
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda: invocations, errors, throttles", left=[invocations, errors, throttles]
            ),
            cloudwatch.GraphWidget(title="Lambda: duration p99 (ms)", left=[duration]),
            cloudwatch.GraphWidget(
                title="Chat service: requests and errors",
                left=[self._service_metric(name) for name in ("Requests", "ClientErrors", "Throttled")]
                + [server_errors, retrieval],
            ),
            cloudwatch.GraphWidget(
                title="Chat service: step latency p90 (ms)",
                left=[self._service_metric(name, "p90") for name in steps],
            ),
        )
        self.dashboard.add_widgets(*endpoint_widgets)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="DynamoDB: latency (ms)",
                left=[
                    table.metric_successful_request_latency(
                        dimensions_map={"TableName": table.table_name, "Operation": operation}, period=FIVE_MINUTES
                    )
                    for operation in ("Query", "TransactWriteItems")
                ],
            ),
            cloudwatch.GraphWidget(title="DynamoDB: throttle events", left=[table_throttles]),
        )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str, periods: int = 1
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)

    def _service_metric(self, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=SERVICE_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.service},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    @staticmethod
    def _sagemaker(name: str, dimensions: dict[str, str], statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=FIVE_MINUTES,
        )
