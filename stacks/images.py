"""Container image URIs from the vendored region facts plus pinned tags: no SageMaker SDK
and no AWS call at synth, and an env-agnostic template that works in every commercial
region SageMaker serves (the Deep Learning Containers account differs by region;
`regions.DLC_ACCOUNTS` maps it)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from constructs import Construct

from .regions import dlc_account


@dataclass(frozen=True)
class DlcImage:
    repository: str
    tag: str

    def uri(self, scope: Construct) -> str:
        stack = Stack.of(scope)
        account = dlc_account(scope)
        return f"{account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{self.repository}:{self.tag}"

    def repository_arn(self, scope: Construct) -> str:
        stack = Stack.of(scope)
        account = dlc_account(scope)
        return f"arn:{stack.partition}:ecr:{stack.region}:{account}:repository/{self.repository}"


# LMI (DJL Serving) with lmi-dist rolling batch, CUDA 12.4.
LMI = DlcImage("djl-inference", "0.31.0-lmi13.0.0-cu124")
# Hugging Face text-generation-inference: flan-t5.
HF_TGI = DlcImage("huggingface-pytorch-tgi-inference", "2.1.1-tgi1.4.0-gpu-py310-cu121-ubuntu20.04")
# Hugging Face inference toolkit on CPU: the embedding model with our inference.py.
HF_CPU = DlcImage("huggingface-pytorch-inference", "2.1.0-transformers4.37.0-cpu-py310-ubuntu22.04")
