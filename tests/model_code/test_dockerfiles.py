"""The rules every Dockerfile under model_code/ must follow (model_code/README.md): base
images pinned, Python packages as pinned wheels, nothing built from source. A requirements
file (`-r`) is read from the build context: every line pinned, installed with --no-deps so
no unpinned dependency comes in. Tested on examples, and on every Dockerfile there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(?P<image>\S+)", re.IGNORECASE | re.MULTILINE)
PIP_INSTALL = re.compile(r"pip3?\s+install\s+(?P<args>[^&;|\n]*)")
FROM_SOURCE = re.compile(r"\b(git\s+clone|cmake|make\s|\./configure|setup\.py\s+install)\b")


def requirements_problems(path: Path) -> list[str]:
    """Each requirement line of a file pins one version with ==; option lines (indexes) pass."""
    if not path.is_file():
        return [f"requirements file {path.name} is not in the build context"]
    problems = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-") and "==" not in line:
            problems.append(f"{path.name}: pin {line} with ==")
    return problems


def dockerfile_problems(text: str, context: Path | None = None) -> list[str]:
    text = re.sub(r"\\\n", " ", text)  # join continued lines
    problems = []
    stages = set()
    for match in FROM.finditer(text):
        image = match["image"]
        if image in stages:
            continue
        name, _, tag = image.partition("@")[0].rpartition(":")
        if "@sha256:" not in image and (not name or "/" in tag or tag in ("", "latest")):
            problems.append(f"base image {image} is not pinned by tag or digest")
        alias = re.search(rf"{re.escape(image)}\s+AS\s+(\S+)", text, re.IGNORECASE)
        if alias:
            stages.add(alias.group(1))
    for match in PIP_INSTALL.finditer(text):
        args = match["args"].split()
        if "--only-binary=:all:" not in args:
            problems.append(f"pip install {' '.join(args)}: add --only-binary=:all: (wheels, no source builds)")
        files = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-r", "--requirement")]
        files += [a.split("=", 1)[1] for a in args if a.startswith("--requirement=")]
        for name in files:
            if "--no-deps" not in args:
                problems.append(f"pip install -r {name}: add --no-deps (pin the whole closure in the file)")
            problems += requirements_problems((context or Path(".")) / Path(name).name)
        packages = [a for a in args if not a.startswith("-") and a not in files]
        unpinned = [p for p in packages if "==" not in p and not p.startswith("/") and not p.endswith(".whl")]
        if unpinned:
            problems.append(f"pip install: pin {', '.join(unpinned)} with ==")
    if FROM_SOURCE.search(text):
        problems.append(f"builds from source ({FROM_SOURCE.search(text).group(1)}): install a wheel")
    return problems


GOOD = """\
FROM 763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.31.0-lmi13.0.0-cu124
RUN pip install --no-cache-dir --only-binary=:all: \\
    faiss-cpu==1.15.1 pyarrow==22.0.0
"""


def test_a_pinned_wheel_only_dockerfile_passes():
    assert dockerfile_problems(GOOD) == []


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        (GOOD.replace(":0.31.0-lmi13.0.0-cu124", ":latest"), "not pinned"),
        (GOOD.replace(":0.31.0-lmi13.0.0-cu124", ""), "not pinned"),
        (GOOD.replace("faiss-cpu==1.15.1", "faiss-cpu"), "pin faiss-cpu"),
        (GOOD.replace("--only-binary=:all: ", ""), "only-binary"),
        (GOOD + "RUN git clone https://github.com/facebookresearch/faiss && cmake -B build faiss\n", "from source"),
    ],
)
def test_rule_breaks_are_reported(dockerfile, problem):
    assert any(problem in p for p in dockerfile_problems(dockerfile)), dockerfile_problems(dockerfile)


def test_a_requirements_file_is_read_from_the_build_context(tmp_path):
    dockerfile = "FROM public.ecr.aws/docker/library/python:3.11.14-slim\n" \
        "RUN pip install --only-binary=:all: --no-deps -r requirements.txt\n"  # fmt: skip
    (tmp_path / "requirements.txt").write_text("--index-url https://example.com/simple\nfaiss-cpu==1.15.1\n")
    assert dockerfile_problems(dockerfile, tmp_path) == []

    (tmp_path / "requirements.txt").write_text("faiss-cpu==1.15.1\npyarrow  # unpinned\n")
    assert dockerfile_problems(dockerfile, tmp_path) == ["requirements.txt: pin pyarrow with =="]
    assert "add --no-deps" in dockerfile_problems(dockerfile.replace("--no-deps ", ""), tmp_path)[0]
    assert "not in the build context" in dockerfile_problems(dockerfile, tmp_path / "elsewhere")[0]


def test_every_dockerfile_under_model_code_follows_the_rules():
    found = {str(p.relative_to(PROJECT_ROOT)): dockerfile_problems(p.read_text(), p.parent)
             for p in (PROJECT_ROOT / "model_code").rglob("Dockerfile*")}  # fmt: skip
    assert found, "the Wikipedia retrieval image has a Dockerfile"
    assert {path: problems for path, problems in found.items() if problems} == {}
