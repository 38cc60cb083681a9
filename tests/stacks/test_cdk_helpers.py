"""The test synths' cloud assemblies (a few MB each) go under one folder per process,
removed when the process exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cdk_helpers import ROOT, synth_once, synth_root

FILL_AND_EXIT = """
import sys
sys.path.insert(0, "tests")
import cdk_helpers
root = cdk_helpers.synth_root()
(root / "cdk-test-x").mkdir()
(root / "cdk-test-x" / "RagChat.template.json").write_text("{}")
print(root)
"""


def test_synths_write_under_the_process_folder():
    _, outdir = synth_once(parked=True)
    assert outdir.parent == synth_root() and (outdir / "RagChat.template.json").exists()


def test_the_process_folder_is_removed_at_exit():
    run = subprocess.run([sys.executable, "-c", FILL_AND_EXIT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    root = Path(run.stdout.strip().splitlines()[-1])
    assert root.name.startswith("cdk-tests-") and not root.exists()
