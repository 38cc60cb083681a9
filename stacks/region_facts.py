"""Region facts the deployment depends on, as plain data with their public sources: read by
the stack (`regions.py`) and by `ragchat preflight`, which must not start CDK to know them.

CDK's own region facts (`FactName.DLC_REPOSITORY_ACCOUNT`) lack the Deep Learning
Containers account of several newer regions, so a template built from them fails at
changeset time with a bare mapping error. The map here covers every commercial region
SageMaker serves; `tests/stacks/test_regions.py` checks it against CDK's facts wherever
both have an entry, and the Function URL list against it."""

from __future__ import annotations

# The account that publishes the AWS Deep Learning Containers (LMI, Hugging Face TGI and
# inference images) in each commercial region. Sources: the "registries" of
# aws/sagemaker-python-sdk `src/sagemaker/image_uri_config/` (djl-lmi.json, and
# huggingface-llm-neuronx.json for ap-south-2, ap-southeast-4/5/7, eu-central-2, eu-south-2,
# mx-central-1), and aws/deep-learning-containers `available_images.md` ("Region
# availability"); ap-east-2 and ap-southeast-6, the newest, as CDK's region facts give them.
DLC_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}

# Regions where Lambda offers no Function URLs. Source: AWS Lambda Developer Guide,
# "Creating and managing Lambda function URLs" (docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html).
NO_FUNCTION_URLS: tuple[str, ...] = (
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
)


def function_url_problem(region: str) -> str | None:
    if region in NO_FUNCTION_URLS:
        return (
            f"Lambda Function URLs are not offered in {region}; the chat service is served through one, "
            "so deploy in another region"
        )
    return None


def container_problem(region: str) -> str | None:
    if region not in DLC_ACCOUNTS:
        return (
            f"the SageMaker Deep Learning Containers are not published in {region}; deploy in one of "
            f"{', '.join(sorted(DLC_ACCOUNTS))}"
        )
    return None
