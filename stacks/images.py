"""Container image URIs from CDK's region facts plus pinned tags: no SageMaker SDK and no
AWS call at synth, and an env-agnostic template that works in every commercial region
(the Deep Learning Containers account differs by region; CDK maps it). The images
themselves are plain data (`ragchat.catalog.ContainerImage`)."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk.region_info import FactName
from constructs import Construct

from ragchat.catalog import LMI, ContainerImage

from .built_image import BuiltImage

# Hugging Face inference toolkit on CPU: the embedding model with our inference.py.
HF_CPU = ContainerImage("huggingface-pytorch-inference", "2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04")
# The moderation model runs on the chat models' LMI image.
MODERATION_IMAGE = LMI


def image_uri(scope: Construct, image: ContainerImage | BuiltImage) -> str:
    if isinstance(image, BuiltImage):
        return image.build.image_uri  # a token on the build: the model waits for the push
    stack = Stack.of(scope)
    account = stack.regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
    return f"{account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{image.repository}:{image.tag}"


def repository_arn(scope: Construct, image: ContainerImage | BuiltImage) -> str:
    if isinstance(image, BuiltImage):
        return image.repository.repository_arn
    stack = Stack.of(scope)
    account = stack.regional_fact(FactName.DLC_REPOSITORY_ACCOUNT)
    return f"arn:{stack.partition}:ecr:{stack.region}:{account}:repository/{image.repository}"
