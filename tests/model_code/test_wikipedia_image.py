"""The retrieval image is never built here (no Docker): its handler's tests run in this venv
instead, so the venv must hold exactly the versions the image installs."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from conftest import PROJECT_ROOT

IMAGE = PROJECT_ROOT / "model_code" / "wikipedia_retrieval"


def image_pins() -> dict[str, str]:
    pins = {}
    for raw in (IMAGE / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, pinned = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return pins


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_the_venv_runs_the_versions_the_image_pins():
    pins = image_pins()
    assert {"faiss-cpu", "torch", "transformers", "pyarrow", "numpy"} <= set(pins)
    assert {name: (pinned, installed(name)) for name, pinned in pins.items() if installed(name) != pinned} == {}


def test_every_dependency_of_an_installed_package_is_pinned_too():
    """The image installs with --no-deps: a dependency missing from the file would be missing
    from the image."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    pins = image_pins()
    missing = set()
    for name in pins:
        for spec in distribution(name).requires or []:
            requirement = Requirement(spec)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            if re.sub(r"[-_.]+", "-", requirement.name).lower() not in pins:
                missing.add(f"{requirement.name} (needed by {name})")
    assert missing == set()


def test_the_image_runs_the_files_the_tests_load():
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert "COPY handler.py serve.py ./" in dockerfile
    assert 'ENTRYPOINT ["python", "/opt/program/serve.py"]' in dockerfile
    bases = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert bases and all(b.startswith("public.ecr.aws/") for b in bases), "CodeBuild logs in to public.ecr.aws only"
