"""The CDK app's stacks. They read the model catalog and the settings contract from the
chat service's package (`lambda/ragchat`, plain-data modules with no runtime
dependencies), so the package's folder goes on the import path here: `pip install -r
requirements.txt` is all the CDK app needs."""

import sys
from pathlib import Path

_SERVICE = str(Path(__file__).resolve().parents[1] / "lambda")
if _SERVICE not in sys.path:
    sys.path.append(_SERVICE)
