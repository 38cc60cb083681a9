"""The CDK conventions for Python apps: `pip install -r requirements.txt` is all `cdk synth`
needs. The app is run in a subprocess and every module it imports must come from the
standard library, the project itself, or a distribution requirements.txt pins (or one they
depend on) - never from the local mode's or the tests' requirements."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

from cdk_helpers import ROOT

REPORT = """
import importlib.metadata, json, runpy, sys
before = set(sys.modules)  # the interpreter's own start-up (site hooks), not the app's
runpy.run_path("app.py", run_name="__main__")
owners = importlib.metadata.packages_distributions()
found = {}
for name, module in list(sys.modules.items()):
    top = name.partition(".")[0]
    if name in before:
        continue
    path = getattr(module, "__file__", None) or ""
    if top in sys.stdlib_module_names or top in found or not path:
        continue
    found[top] = {"path": path, "distributions": owners.get(top, [])}
print(json.dumps(found))
"""


def pinned(requirements) -> set[str]:
    names = set()
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= pinned(requirements.parent / line[3:].strip())
        elif line:
            names.add(canonical(re.split(r"[\[=<>~ ]", line, maxsplit=1)[0]))
    return names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def with_dependencies(names: set[str]) -> set[str]:
    """The distributions pip installs for these: each one's requirements, without extras."""
    from packaging.requirements import Requirement

    closure, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonical(requirement.name))
    return closure


def test_the_cdk_app_imports_only_what_requirements_txt_installs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({"aws:cdk:bundling-stacks": []})}
    result = subprocess.run(
        [sys.executable, "-c", REPORT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = json.loads(result.stdout.splitlines()[-1])
    allowed = with_dependencies(pinned(ROOT / "requirements.txt"))
    outside = {
        top: found["distributions"]
        for top, found in imported.items()
        if not found["path"].startswith(str(ROOT)) and not {canonical(d) for d in found["distributions"]} & allowed
    }
    assert outside == {}, f"the CDK app imports modules requirements.txt does not install: {outside}"
    assert (tmp_path / "RagChat.template.json").is_file()
    # the Lambda's runtime and the local mode stay out of the CDK app
    assert not {"boto3", "pydantic", "starlette", "numpy", "torch"} & set(imported)
    assert not {"boto3", "torch", "pytest"} & allowed
