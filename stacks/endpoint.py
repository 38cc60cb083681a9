"""A SageMaker real-time endpoint: model, endpoint config, endpoint and auto scaling.

No resource gets a fixed name, so CloudFormation can replace a config or endpoint cleanly
when settings change. The execution role may pull only its image's repository and read
only its model data; a JumpStart model package brings its own image and weights, which
SageMaker pulls itself, so its role gets neither grant."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ragchat.catalog import ContainerImage

from .built_image import BuiltImage
from .images import image_uri, repository_arn
from .scale_to_zero import InferenceComponent, ScaleToZero, inference_component_config
from .weights import staged_weights, weights_pattern

VARIANT = "AllTraffic"
NETWORK_ISOLATION_CHECK = "CKV_AWS_370"  # checkov: "Ensure Amazon SageMaker model uses network isolation"


@dataclass(frozen=True)
class EndpointSpec:
    instance_type: str
    image: ContainerImage | BuiltImage | None = None  # exactly one of image and model_package_arn
    model_package_arn: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    model_archive: s3_assets.Asset | None = None
    # Uncompressed model data: every object under s3://bucket/prefix/ lands in /opt/ml/model.
    model_data_prefix: tuple[str, str] | None = None  # (bucket, key prefix ending in /)
    volume_size_gb: int | None = None  # the instance's storage volume, for model data that needs room
    min_instances: int = 1
    max_instances: int = 1
    startup_timeout_seconds: int = 600
    download_timeout_seconds: int = 600
    invocations_per_instance_target: int = 20
    network_isolation: bool = False  # true when the container needs nothing from the internet
    # Why a container needs the network, and how to turn isolation on: required when neither
    # isolation nor a model package isolates it; the template carries it as checkov's skip.
    network_reason: str | None = None
    staged_weights_uri: str | None = None  # s3://bucket/prefix/ SageMaker copies to /opt/ml/model
    scale_to_zero: ScaleToZero | None = None  # served as an inference component that can reach 0 instances

    def __post_init__(self) -> None:
        if (self.image is None) == (self.model_package_arn is None):
            raise ValueError("an endpoint runs either a container image or a model package")
        if self.model_package_arn is not None and (self.model_archive is not None or self.environment):
            raise ValueError("a model package brings its own model data and configuration")
        if self.isolated == (self.network_reason is not None):
            raise ValueError("a model runs with network isolation, or its network_reason says why it cannot")

    @property
    def isolated(self) -> bool:
        """Model packages run with network isolation (JumpStart deploys them so too)."""
        return self.network_isolation or self.model_package_arn is not None


class SageMakerEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, spec: EndpointSpec) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of the {construct_id} endpoint",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[
                    f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/Endpoints/*"
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints*", "AWS/SageMaker*"]}},
            )
        )
        if spec.model_package_arn is not None:
            container: dict = {"model_package_name": spec.model_package_arn}
        else:
            container = {"image": image_uri(self, spec.image), "environment": spec.environment or None}
            self._grant_image_pull(spec.image)
        self.staged_weights_uri = spec.staged_weights_uri
        if spec.staged_weights_uri is not None:
            container["model_data_source"] = staged_weights(spec.staged_weights_uri)
            self._grant_weights_read(spec.staged_weights_uri)
        if spec.model_archive is not None:
            archive = spec.model_archive
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[f"arn:{stack.partition}:s3:::{archive.s3_bucket_name}/{archive.s3_object_key}"],
                )
            )
            container["model_data_url"] = archive.s3_object_url
        if spec.model_data_prefix is not None:
            bucket, prefix = spec.model_data_prefix
            self._grant_prefix_read(bucket, prefix)
            container["model_data_source"] = sagemaker.CfnModel.ModelDataSourceProperty(
                s3_data_source=sagemaker.CfnModel.S3DataSourceProperty(
                    s3_uri=f"s3://{bucket}/{prefix}", s3_data_type="S3Prefix", compression_type="None"
                )
            )

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=spec.isolated or None,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(**container),
        )
        if spec.network_reason is not None:
            # checkov's CloudFormation suppression: the finding is reported as skipped, with the reason
            skip = {"id": NETWORK_ISOLATION_CHECK, "comment": spec.network_reason}
            self.model.add_metadata("checkov", {"skip": [skip]})
        # CreateModel checks the role can pull the image: the grants must exist first.
        self.model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        if spec.scale_to_zero is not None:
            self.config = inference_component_config(self, VARIANT, spec.instance_type, self.role)
        else:
            self.config = sagemaker.CfnEndpointConfig(
                self,
                "Config",
                production_variants=[
                    sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                        variant_name=VARIANT,
                        model_name=self.model.attr_model_name,
                        initial_instance_count=spec.min_instances,
                        instance_type=spec.instance_type,
                        initial_variant_weight=1.0,
                        container_startup_health_check_timeout_in_seconds=spec.startup_timeout_seconds,
                        model_data_download_timeout_in_seconds=spec.download_timeout_seconds,
                        volume_size_in_gb=spec.volume_size_gb,
                    )
                ],
            )
        autoscaled = spec.scale_to_zero is None and spec.max_instances > spec.min_instances
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_config_name=self.config.attr_endpoint_config_name,
            # an update (a new model or image) keeps the instance count auto scaling has reached,
            # instead of dropping a loaded fleet back to min_instances (UpdateEndpoint's default)
            retain_all_variant_properties=autoscaled or None,
        )
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.endpoint_arn = self.endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN

        self.inference_component: InferenceComponent | None = None
        if spec.scale_to_zero is not None:
            self.inference_component = InferenceComponent(
                self,
                "Component",
                endpoint=self.endpoint,
                variant=VARIANT,
                model=self.model,
                spec=spec.scale_to_zero,
                startup_timeout_seconds=spec.startup_timeout_seconds,
                download_timeout_seconds=spec.download_timeout_seconds,
            )
        elif autoscaled:
            self._scale_on_invocations(spec)

    def _scale_on_invocations(self, spec: EndpointSpec) -> None:
        """Target tracking on invocations per instance. Only a variant that can scale is
        registered: SageMaker refuses an UpdateEndpoint that changes the instance type of a
        registered variant, so a fixed-size variant stays free to change type. No role is
        passed: Application Auto Scaling uses its SageMaker service-linked role."""
        target = autoscaling.CfnScalableTarget(
            self,
            "Scaling",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=spec.min_instances,
            max_capacity=spec.max_instances,
        )
        autoscaling.CfnScalingPolicy(
            self,
            "ScalingPolicy",
            policy_name="InvocationsPerInstance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=spec.invocations_per_instance_target,
                predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=600,
                scale_out_cooldown=120,
            ),
        )

    def _grant_weights_read(self, uri: str) -> None:
        """SageMaker reads the staged weights with this role: that prefix, nothing else."""
        self._grant_objects_read(*weights_pattern(uri))

    def _grant_prefix_read(self, bucket: str, prefix: str) -> None:
        self._grant_objects_read(bucket, f"{prefix}*")

    def _grant_objects_read(self, bucket: str, keys: str) -> None:
        """GetObject on the keys matching `keys` and ListBucket limited to them."""
        partition = Stack.of(self).partition
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{partition}:s3:::{bucket}/{keys}"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{partition}:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": [keys]}},
            )
        )

    def _grant_image_pull(self, image: ContainerImage) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[repository_arn(self, image)],
            )
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
