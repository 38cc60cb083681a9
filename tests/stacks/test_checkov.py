"""checkov (in its own venv, .venv-checkov/, built by `make install`/`make test`) on the
templates that matter: no function without reserved concurrency (CKV_AWS_115) and no
SageMaker model without network isolation (CKV_AWS_370), except a hub-mode LLM, whose
container downloads its weights at start: its template marks the finding skipped with the
reason and the fix (stage the weights). One checkov run over every configuration, plus a
template with both broken, so the check is seen to fail."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from cdk_helpers import ROOT, STAGED_WEIGHTS, WIKIPEDIA, resources, synth_once

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
ISOLATION, RESERVED_CONCURRENCY = "CKV_AWS_370", "CKV_AWS_115"
CHECKED = {ISOLATION: "AWS::SageMaker::Model", RESERVED_CONCURRENCY: "AWS::Lambda::Function"}
CONFIGURATIONS = {
    "default": {},
    "staged": STAGED_WEIGHTS,
    "scale_to_zero": {"scale_to_zero": True, "scale_to_zero_idle_minutes": 45},
    "parked": {"parked": True},
    "wikipedia": WIKIPEDIA,
    "bedrock": {"chat_model": "bedrock"},
    "unreserved": WIKIPEDIA | {"lambda_reserved_concurrency": 0},  # an account that cannot reserve any
}
BROKEN = "broken"  # the staged template without isolation and reserved concurrency


def broken_template(template: dict) -> dict:
    broken = copy.deepcopy(template)
    for resource in broken["Resources"].values():
        if resource["Type"] == CHECKED[ISOLATION]:
            resource["Properties"].pop("EnableNetworkIsolation", None)
        if resource["Type"] == CHECKED[RESERVED_CONCURRENCY]:
            resource["Properties"].pop("ReservedConcurrentExecutions", None)
    return broken


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    found = {name: synth_once(**settings)[0] for name, settings in CONFIGURATIONS.items()}
    return found | {BROKEN: broken_template(found["staged"])}


@pytest.fixture(scope="module")
def checkov(templates, tmp_path_factory) -> dict[str, dict[str, dict[str, dict]]]:
    """{configuration: {check id: {resource id: checkov's result}}}, from one run over all."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make install` builds it from requirements-checkov.txt"
    folder = tmp_path_factory.mktemp("checkov")
    files = []
    for name, template in templates.items():
        files += ["-f", f"{name}.template.json"]
        (folder / f"{name}.template.json").write_text(json.dumps(template, indent=1))
    run = subprocess.run(
        [str(CHECKOV), *files, "--framework", "cloudformation", "--check", ",".join(CHECKED)]
        + ["--output", "json", "--skip-download"],  # nothing from Prisma Cloud: offline, and fast
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr  # 1: some check failed (the broken template)
    report = json.loads(run.stdout)
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    results: dict[str, dict[str, dict[str, dict]]] = {name: {check: {} for check in CHECKED} for name in templates}
    for outcome in report["results"].values():
        for result in outcome:
            name = result["file_path"].strip("/").removesuffix(".template.json")
            results[name][result["check_id"]][result["resource"].split(".", 1)[1]] = result["check_result"]
    return results


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_every_model_and_function_passes_or_is_a_hub_mode_model(name, templates, checkov):
    for check, kind in CHECKED.items():
        found = checkov[name][check]
        assert set(found) == set(resources(templates[name], kind)), f"{check} ran on every {kind}"
        for resource, result in found.items():
            if result["result"] == "SKIPPED" and check == RESERVED_CONCURRENCY:
                assert name == "unreserved", f"{resource}: skipped only when the user reserves nothing"
                assert "lambda_reserved_concurrency=0" in result["suppress_comment"], "the skip names the setting"
            elif result["result"] == "SKIPPED":
                model = templates[name]["Resources"][resource]
                assert "EnableNetworkIsolation" not in model["Properties"]
                assert "Hugging Face hub" in result["suppress_comment"]
                assert "model_code/upload_weights.py" in result["suppress_comment"], "the skip names the fix"
            else:
                assert result["result"] == "PASSED", f"{check} on {resource}: {result}"


def skipped(results: dict[str, dict]) -> set[str]:
    return {resource.split("Model")[0] for resource, r in results.items() if r["result"] == "SKIPPED"}


def test_only_the_hub_mode_llms_are_skipped(checkov):
    assert skipped(checkov["default"][ISOLATION]) == {"ChatLlm", "ModerationLlm"}
    assert skipped(checkov["scale_to_zero"][ISOLATION]) == {"ChatLlm", "ModerationLlm"}
    assert skipped(checkov["wikipedia"][ISOLATION]) == {"ChatLlm", "ModerationLlm"}
    assert skipped(checkov["bedrock"][ISOLATION]) == {"ModerationLlm"}


def test_staged_weights_need_no_skip(checkov, templates):
    results = checkov["staged"][ISOLATION]
    assert len(results) == 3 and {r["result"] for r in results.values()} == {"PASSED"}
    assert all(
        "Metadata" not in r for r in templates["staged"]["Resources"].values() if r["Type"] == CHECKED[ISOLATION]
    )


def test_reserving_nothing_skips_the_check_on_every_function_and_only_there(checkov, templates):
    found = checkov["unreserved"][RESERVED_CONCURRENCY]
    assert len(found) == 2 and {r["result"] for r in found.values()} == {"SKIPPED"}  # chat + image build handler
    assert all(
        "ReservedConcurrentExecutions" not in templates["unreserved"]["Resources"][f]["Properties"] for f in found
    )
    for name in set(CONFIGURATIONS) - {"unreserved"}:
        assert {r["result"] for r in checkov[name][RESERVED_CONCURRENCY].values()} == {"PASSED"}, name


def test_parked_has_no_model_and_its_function_reserves_concurrency(checkov):
    assert checkov["parked"][ISOLATION] == {}
    assert {r["result"] for r in checkov["parked"][RESERVED_CONCURRENCY].values()} == {"PASSED"}


def test_the_checks_fail_without_isolation_or_reserved_concurrency(checkov, templates):
    for check, kind in CHECKED.items():
        failed = {resource for resource, r in checkov[BROKEN][check].items() if r["result"] == "FAILED"}
        assert failed == set(resources(templates[BROKEN], kind)) != set(), check


def test_a_model_runs_isolated_or_says_why_it_cannot():
    from stacks.endpoint import EndpointSpec
    from stacks.images import MODERATION_IMAGE

    with pytest.raises(ValueError, match="network_reason"):
        EndpointSpec(instance_type="ml.g5.xlarge", image=MODERATION_IMAGE)
    with pytest.raises(ValueError, match="network_reason"):
        EndpointSpec(instance_type="ml.g5.xlarge", image=MODERATION_IMAGE, network_isolation=True, network_reason="x")
    assert EndpointSpec(instance_type="ml.g5.xlarge", image=MODERATION_IMAGE, network_reason="hub").isolated is False
