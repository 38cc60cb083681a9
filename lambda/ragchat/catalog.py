"""The model catalog: one entry per deployable chat model, and the only place that names it.

An entry holds what both sides need: the prompt profile and payload contract the Lambda
speaks, and the serving recipe the CDK app deploys (container image or model package,
serving configuration, default instance type, its service quota, its hourly price for the
README's cost table). Plain data only: the Lambda reads it without aws_cdk, and the
stacks read it without the Lambda's runtime dependencies.

Adding a model is one entry in `ENTRIES`, its contract examples in `model_code/README.md`,
and a contract class in `payloads.py` only when its wire format is new."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .payloads import JumpStartLlamaContract, LmiChatContract, LmiContract, PayloadContract, TgiContract
from .prompts import SMOLLM2_LOCAL, ChatMessagesProfile, InstructionProfile, ModelProfile, OpenChatKitProfile

INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[0-9]*x?large$|^ml\.[a-z0-9]+\.(medium|large|xlarge)$")


class CatalogError(ValueError):
    """An unknown model name, or an entry that lacks a part."""


@dataclass(frozen=True)
class ContainerImage:
    """An AWS Deep Learning Container: the registry account differs by region, so the
    stack builds the URI from CDK's region facts."""

    repository: str
    tag: str


# LMI (DJL Serving) with lmi-dist rolling batch, CUDA 12.4: also serves the moderation model.
LMI = ContainerImage("djl-inference", "0.31.0-lmi13.0.0-cu124")
# Hugging Face text-generation-inference.
HF_TGI = ContainerImage("huggingface-pytorch-tgi-inference", "2.1.1-tgi1.4.0-gpu-py310-cu121-ubuntu20.04")


@dataclass(frozen=True)
class ModelPackage:
    """A JumpStart model package: SageMaker pulls its image and weights itself. The name
    is the same in every region; only the publishing account differs."""

    name: str
    accounts: Mapping[str, str]  # region -> the account that publishes the package there

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self.accounts))


@dataclass(frozen=True)
class License:
    """Terms the chat service accepts on every request: synth asks for `ragchat:<setting>=true`."""

    name: str
    url: str
    setting: str


def endpoint_quota_name(instance_type: str) -> str:
    """The Service Quotas name (service code `sagemaker`) that bounds how many instances of a
    type the account's endpoints may run: every endpoint's, chat or not (ragchat preflight)."""
    return f"{instance_type} for endpoint usage"


@dataclass(frozen=True)
class SageMakerServing:
    """How a SageMaker endpoint serves the model: a container image with its
    configuration (a `model_code/` folder packed as model.tar.gz, and/or environment
    variables), or a model package that brings its own."""

    instance_type: str  # the default; ragchat:chat_instance_type overrides it
    hourly_usd: float  # on-demand price of that instance in us-east-1, for the README's cost table
    image: ContainerImage | None = None
    model_archive: str | None = None  # a folder of model_code/
    environment: Mapping[str, str] = field(default_factory=dict)
    model_package: ModelPackage | None = None
    # The serving setting that locates the weights: with ragchat:chat_model_s3_uri SageMaker
    # copies the staged weights to /opt/ml/model and this setting points there (a
    # serving.properties key of the archive, or an environment variable). None: no S3 weights.
    weights_key: str | None = None
    # The serving setting that pins the hub revision (ragchat:chat_model_revision sets it).
    revision_key: str | None = None
    # About how long the model takes from a fresh instance to serving (download + load), an
    # estimate from its weights' size: startup timeouts are twice this, and the Lambda quotes
    # it when a request finds the model scaled to zero.
    start_seconds: int = 600
    # What one copy needs as an inference component (ragchat:scale_to_zero).
    accelerators: int = 1
    memory_mb: int = 8192

    @property
    def quota_name(self) -> str:
        """The Service Quotas name (Amazon SageMaker) the default instance needs."""
        return endpoint_quota_name(self.instance_type)


@dataclass(frozen=True)
class BedrockServing:
    """Amazon Bedrock's Converse API: no endpoint to run, paid per token. The model id is a
    foundation model or a cross-region inference profile (`us.`, `eu.`, `apac.`, ...,
    `global.` + the model id); ragchat:bedrock_model_id overrides the default.

    The function's IAM grant must name the foundation model in every region a geographic
    profile routes to, and nothing offline can look those up: `destination_regions` holds
    them for the profiles this catalog knows (as Bedrock's documentation lists them; not
    checked against a live account), and ragchat:bedrock_destination_regions names them
    for any other."""

    model_id: str
    destination_regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pricing: str = ""  # what a call costs, for the README's cost table (nothing is billed while idle)


@dataclass(frozen=True)
class ContractExamples:
    """The blocks of `model_code/README.md` that document the model's contract, replayed
    by the tests. Streamed examples are needed exactly when the contract streams."""

    response: str  # a buffered answer
    reply: str  # the reply the Lambda makes of it (and of the stream)
    request: str | None = None  # the buffered request, exactly as the Lambda sends it
    stream_request: str | None = None
    stream: str | None = None


@dataclass(frozen=True)
class ChatModel:
    name: str  # ragchat:chat_model, and RAGCHAT_MODEL_PROFILE in the Lambda
    title: str  # what it is, for people
    profile: ModelProfile
    contract: PayloadContract | None  # SageMaker only: Bedrock's Converse API is one contract for all
    serving: SageMakerServing | BedrockServing
    examples: ContractExamples | None
    license: License | None = None

    @property
    def backend(self) -> str:
        """The generator the Lambda builds for this model (a key of the AWS factory's GENERATORS)."""
        return "bedrock" if isinstance(self.serving, BedrockServing) else "sagemaker"

    def problems(self) -> list[str]:
        """Every part this entry lacks or gets inconsistent; empty when complete."""
        if isinstance(self.serving, BedrockServing):
            return self._bedrock_problems()
        found: list[str] = []
        serving, contract, profile, examples = self.serving, self.contract, self.profile, self.examples
        if not isinstance(profile, ModelProfile):
            found.append("no prompt profile")
        elif profile.name != self.name:
            found.append(f"its profile is named {profile.name!r}, the entry {self.name!r}")
        if not isinstance(contract, PayloadContract):
            found.append("no payload contract")
        elif isinstance(profile, ModelProfile) and profile.renders != contract.prompt:
            found.append(f"the profile renders {profile.renders}, the contract takes {contract.prompt}")
        if not isinstance(serving, SageMakerServing):
            found.append("no serving recipe")
        else:
            if (serving.image is None) == (serving.model_package is None):
                found.append("the serving recipe needs exactly one of a container image and a model package")
            if serving.model_package is not None and (serving.model_archive or serving.environment):
                found.append("a model package brings its own configuration")
            if serving.image is not None and not (serving.model_archive or serving.environment):
                found.append("a container image needs a serving configuration (model_archive or environment)")
            if isinstance(contract, PayloadContract):
                served = serving.image.repository if serving.image else getattr(serving.model_package, "name", "")
                if not any(served.startswith(name) for name in contract.containers):
                    found.append(f"deploys {served!r}, which {type(contract).__name__} does not speak")
            if not INSTANCE_TYPE.match(serving.instance_type or ""):
                found.append(f"default instance type {serving.instance_type!r} is not a SageMaker instance type")
            if not serving.hourly_usd or serving.hourly_usd <= 0:
                found.append("no hourly price for the cost table")
            if serving.weights_key and serving.weights_key not in serving.environment and not serving.model_archive:
                found.append(f"weights_key {serving.weights_key!r} is neither an environment variable nor archived")
        if not isinstance(examples, ContractExamples) or not (examples.response and examples.reply):
            found.append("no documented contract examples (a buffered response and its reply)")
        elif isinstance(contract, PayloadContract) and contract.streams != bool(
            examples.stream and examples.stream_request
        ):
            found.append("streamed examples (request and stream) are needed exactly when the contract streams")
        return found

    def _bedrock_problems(self) -> list[str]:
        found: list[str] = []
        profile, serving = self.profile, self.serving
        if not isinstance(profile, ModelProfile):
            found.append("no prompt profile")
        else:
            if profile.name != self.name:
                found.append(f"its profile is named {profile.name!r}, the entry {self.name!r}")
            if profile.renders != "messages":
                found.append(f"the profile renders {profile.renders}, Converse takes messages")
        if self.contract is not None or self.examples is not None:
            found.append("Converse is the contract: a Bedrock entry has no payload contract or container examples")
        if not BEDROCK_MODEL_ID.match(serving.model_id):
            found.append(f"{serving.model_id!r} is not a Bedrock model or inference profile id")
        geographic = GEO_PROFILE_ID.match(serving.model_id)
        if geographic and not serving.destination_regions.get(serving.model_id):
            found.append(f"no destination regions for the default inference profile {serving.model_id}")
        for profile_id, regions in serving.destination_regions.items():
            if not GEO_PROFILE_ID.match(profile_id) or not all(REGION.match(r) for r in regions):
                found.append(f"destination regions of {profile_id!r} must be region names of a geographic profile")
        if not serving.pricing:
            found.append("no pricing for the cost table")
        return found


# Bedrock ids: a foundation model (`provider.model-version:n`), or a system-defined cross-region
# inference profile, the model id behind a geography prefix (`global.` routes to every commercial region).
BEDROCK_MODEL_ID = re.compile(r"^((us|us-gov|eu|apac|jp|au|ca|global)\.)?[a-z0-9-]{1,63}\.[a-z0-9.:-]{1,128}$")
GEO_PROFILE_ID = re.compile(r"^(us|us-gov|eu|apac|jp|au|ca)\.[a-z0-9-]{1,63}\.[a-z0-9.:-]{1,128}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")

ENTRIES: tuple[ChatModel, ...] = (
    ChatModel(
        name="gpt-neoxt-chat",
        title="togethercomputer/GPT-NeoXT-Chat-Base-20B on LMI, fp16, tensor parallel 4",
        profile=OpenChatKitProfile(
            name="gpt-neoxt-chat",
            context_window=2048,
            stop=("<human>", "</s>", "<|endoftext|>"),
            strip_tokens=("<pad>",),
        ),
        contract=LmiContract(),
        serving=SageMakerServing(
            instance_type="ml.g5.12xlarge",
            hourly_usd=7.09,
            image=LMI,
            model_archive="chat_llm",
            weights_key="option.model_id",
            revision_key="option.revision",
            start_seconds=600,  # fp16 GPT-NeoXT 20B, ~41 GB on 4 GPUs
            accelerators=4,  # tensor parallel 4
            memory_mb=32768,
        ),
        examples=ContractExamples(
            request="lmi-request",
            response="lmi-response",
            reply="chat-reply",
            stream_request="lmi-stream-request",
            stream="lmi-stream",
        ),
    ),
    ChatModel(
        name="llama-2-chat",
        title="Llama-2-7b-chat, JumpStart's model package (meta-textgeneration-llama-2-7b-f)",
        profile=ChatMessagesProfile(name="llama-2-chat", context_window=4096, stop=("</s>",)),
        contract=JumpStartLlamaContract(),
        serving=SageMakerServing(
            instance_type="ml.g5.4xlarge",
            hourly_usd=2.03,
            start_seconds=420,  # Llama-2-7b, ~13 GB
            model_package=ModelPackage(
                name="llama2-7b-f-v4-71eeccf76ddf33f2a18d2e16b9c7f302",
                accounts={
                    "ap-southeast-1": "192199979996",
                    "ap-southeast-2": "666831318237",
                    "eu-west-1": "985815980388",
                    "us-east-1": "865070037744",
                    "us-east-2": "057799348421",
                    "us-west-2": "594846645681",
                },
            ),
        ),
        examples=ContractExamples(request="llama-request", response="llama-response", reply="llama-reply"),
        license=License(
            name="Meta's Llama 2 license", url="https://ai.meta.com/llama/license/", setting="accept_llama2_eula"
        ),
    ),
    ChatModel(
        name="flan-t5",
        title="google/flan-t5-xl on the Hugging Face LLM container (TGI)",
        # flan-t5 was trained on 512-token inputs: TGI is let take 3072 (T5's relative positions
        # allow it), but answers degrade past what it was trained on, so the prompt is budgeted
        # at 512. Encoder-decoder: the reply does not share the input window.
        profile=InstructionProfile(
            name="flan-t5",
            context_window=512,
            stop=("</s>",),
            strip_tokens=("<pad>",),
            keeps_history=False,
            reply_in_window=False,
        ),
        contract=TgiContract(),
        serving=SageMakerServing(
            instance_type="ml.g5.2xlarge",
            hourly_usd=1.52,
            image=HF_TGI,
            environment={
                "HF_MODEL_ID": "google/flan-t5-xl",
                "SM_NUM_GPUS": "1",
                "MAX_INPUT_LENGTH": "3072",
                "MAX_TOTAL_TOKENS": "4096",
            },
            weights_key="HF_MODEL_ID",
            revision_key="REVISION",
            start_seconds=300,  # flan-t5-xl, ~11 GB
        ),
        examples=ContractExamples(
            response="tgi-response", reply="tgi-reply", stream_request="tgi-stream-request", stream="tgi-stream"
        ),
    ),
    ChatModel(
        name="qwen2.5-7b-instruct",
        title="Qwen/Qwen2.5-7B-Instruct (Apache-2.0) on LMI with vLLM, bf16, one A10G",
        profile=ChatMessagesProfile(
            name="qwen2.5-7b-instruct", context_window=8192, stop=("<|im_end|>", "<|endoftext|>")
        ),
        contract=LmiChatContract(),
        serving=SageMakerServing(
            instance_type="ml.g5.2xlarge",
            hourly_usd=1.52,
            image=LMI,
            environment={  # LMI reads OPTION_<KEY> as option.<key>
                "HF_MODEL_ID": "Qwen/Qwen2.5-7B-Instruct",
                # the hub commit the weights are pinned to: a new upload never changes what is served
                "OPTION_REVISION": "a09a35458c702b33eeacc393d103063234e8bc28",
                "OPTION_ROLLING_BATCH": "vllm",
                "OPTION_DTYPE": "bf16",
                "TENSOR_PARALLEL_DEGREE": "1",
                "OPTION_MAX_MODEL_LEN": "8192",
                "OPTION_MAX_ROLLING_BATCH_SIZE": "16",
            },
            weights_key="HF_MODEL_ID",
            revision_key="OPTION_REVISION",
            start_seconds=420,  # Qwen2.5-7B bf16, ~15 GB
        ),
        examples=ContractExamples(
            request="qwen-request",
            response="qwen-response",
            reply="qwen-reply",
            stream_request="qwen-stream-request",
            stream="qwen-stream",
        ),
    ),
    ChatModel(
        name="bedrock",
        title="a model on Amazon Bedrock through the Converse API (default: Amazon Nova 2 Lite, US profile)",
        # Converse maps these messages to its system block and alternating turns; each model
        # ends its own turn. The window bounds the history replayed (and paid for) per turn.
        profile=ChatMessagesProfile(name="bedrock", context_window=32_000),
        contract=None,
        serving=BedrockServing(
            model_id="us.amazon.nova-2-lite-v1:0",
            destination_regions={
                "us.amazon.nova-2-lite-v1:0": ("us-east-1", "us-east-2", "us-west-2"),
                "us.anthropic.claude-haiku-4-5-20251001-v1:0": ("us-east-1", "us-east-2", "us-west-2"),
            },
            pricing="per input and output token, at the model's on-demand Bedrock price",
        ),
        examples=None,
    ),
)
DEFAULT_CHAT_MODEL = "gpt-neoxt-chat"


def _index(entries: tuple[ChatModel, ...]) -> dict[str, ChatModel]:
    models: dict[str, ChatModel] = {}
    for entry in entries:
        if entry.name in models:
            raise CatalogError(f"two catalog entries are named {entry.name!r}")
        if problems := entry.problems():
            raise CatalogError(f"catalog entry {entry.name!r}: {'; '.join(problems)}")
        models[entry.name] = entry
    return models


CHAT_MODELS: dict[str, ChatModel] = _index(ENTRIES)


def chat_model(name: str) -> ChatModel:
    try:
        return CHAT_MODELS[name]
    except KeyError:
        raise CatalogError(f"unknown chat model {name!r}; choose one of {', '.join(CHAT_MODELS)}") from None


def get_profile(name: str) -> ModelProfile:
    """The prompt profile of a catalog model, or of the local mode's model."""
    if name == SMOLLM2_LOCAL.name:
        return SMOLLM2_LOCAL
    return chat_model(name).profile
