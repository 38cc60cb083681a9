"""Asset bundling that needs no Docker: Lambda dependencies installed by pip for the Lambda
platform, and SageMaker model archives (model.tar.gz) written with tarfile. Docker
bundling stays as the fallback when local bundling is not possible."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jsii
from aws_cdk import ILocalBundling

LAMBDA_PYTHON = "3.14"
LAMBDA_PLATFORM = "manylinux2014_x86_64"


@jsii.implements(ILocalBundling)
class PipInstallBundling:
    """Copies the package folder and installs its requirements as Lambda-compatible wheels."""

    def __init__(self, source: Path, package: str, requirements: Path) -> None:
        self.source, self.package, self.requirements = source, package, requirements

    def try_bundle(self, output_dir: str, options: object) -> bool:
        out = Path(output_dir)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(out), "--platform", LAMBDA_PLATFORM, "--implementation", "cp",
            "--python-version", LAMBDA_PYTHON, "--only-binary=:all:", "-r", str(self.requirements),
        ]  # fmt: skip
        if subprocess.run(command, check=False).returncode != 0:
            return False
        # the Lambda needs neither the local model adapters nor the ingestion command
        ignore = shutil.ignore_patterns("__pycache__", "local", "ingest")
        shutil.copytree(self.source / self.package, out / self.package, ignore=ignore)
        shutil.copy2(self.source / "run.sh", out / "run.sh")  # the Lambda's entry script
        return True


@jsii.implements(ILocalBundling)
class ModelArchiveBundling:
    """Writes `model.tar.gz` from a model_code folder, as SageMaker's ModelDataUrl expects.
    `overrides` replace keys of serving.properties (the weights' S3 location, say)."""

    def __init__(self, source: Path, overrides: dict[str, str] | None = None) -> None:
        self.source, self.overrides = source, overrides or {}

    def try_bundle(self, output_dir: str, options: object) -> bool:
        with tarfile.open(Path(output_dir) / "model.tar.gz", "w:gz") as archive:
            for path in sorted(self.source.rglob("*")):
                if not path.is_file() or "__pycache__" in path.parts:
                    continue
                name = str(path.relative_to(self.source))
                if name == "serving.properties" and self.overrides:
                    data = apply_overrides(path.read_text(), self.overrides).encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
                else:
                    archive.add(path, arcname=name)
        return True


def apply_overrides(properties: str, overrides: dict[str, str]) -> str:
    """serving.properties with the given keys set (replaced in place, or appended)."""
    lines, seen = [], set()
    for line in properties.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and key in overrides:
            line, _ = f"{key}={overrides[key]}", seen.add(key)
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(lines) + "\n"
