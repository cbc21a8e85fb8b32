"""Every name in the public API resolves, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import stepanalytics as sa


def test_every_public_name_resolves() -> None:
    for name in sa.__all__:
        assert getattr(sa, name) is not None, name


def test_import_does_not_load_heavy_analysis_modules() -> None:
    code = (
        "import sys, stepanalytics; print('statsmodels' in sys.modules, 'lifelines' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
