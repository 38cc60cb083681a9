"""A container image the stack builds itself, at deploy time, into a repository it owns.

`cdk deploy` needs no Docker on the deployer's machine: the build context is uploaded as an
S3 asset and `cdklabs-deploy-time-build` builds and pushes it in CodeBuild during the
deployment. The tag is the build context's hash (the construct's default tag is random, so
every deploy would rebuild and roll the endpoint): an unchanged folder is not rebuilt, a
changed one gets a new tag and so a new SageMaker model. `cdk destroy` deletes the
repository with its images (EmptyOnDelete) and the build project."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from cdklabs.deploy_time_build import ContainerImageBuild
from constructs import Construct

from .config import BUILD_HANDLER_CONCURRENCY, NO_RESERVATION_SKIP

IGNORED = ("__pycache__", ".pytest_cache")
# The library's custom-resource handler, a singleton at the stack's root (see config.py).
BUILD_HANDLER = "DeployTimeBuildCustomResourceHandler"


def context_files(directory: Path) -> list[Path]:
    """The files that go into the build (what the S3 asset uploads)."""
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and not set(p.relative_to(directory).parts) & set(IGNORED)
    )


def context_tag(directory: Path) -> str:
    """A tag that changes exactly when a file of the build context does (name or content)."""
    digest = hashlib.sha256()
    for path in context_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"ctx-{digest.hexdigest()[:20]}"


class BuiltImage(Construct):
    """The stack's own repository and the deploy-time build that fills it."""

    def __init__(self, scope: Construct, construct_id: str, directory: Path, reserve_concurrency: bool = True) -> None:
        super().__init__(scope, construct_id)
        self.tag = context_tag(directory)
        self.repository = ecr.Repository(
            self,
            "Repository",
            removal_policy=RemovalPolicy.DESTROY,
            empty_on_delete=True,
            image_scan_on_push=True,
        )
        self.build = ContainerImageBuild(
            self,
            "Build",
            directory=str(directory),
            exclude=[f"**/{name}" for name in IGNORED],
            repository=self.repository,
            tag=self.tag,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        for child in Stack.of(self).node.children:
            if child.node.id.startswith(BUILD_HANDLER):
                if reserve_concurrency:
                    child.node.default_child.add_property_override(
                        "ReservedConcurrentExecutions", BUILD_HANDLER_CONCURRENCY
                    )
                else:
                    child.node.default_child.add_metadata("checkov", {"skip": [NO_RESERVATION_SKIP]})
