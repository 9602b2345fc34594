"""Run a function in a fresh Python process laid out as the main Lambda layer is.

The layer (``layers/build.py``) leaves out ``PRUNED`` (``pydantic/v1``) and ships
trimmed botocore service models that ``AWS_DATA_PATH`` names. ``deployed_env`` gives a
child process the same: ``AWS_DATA_PATH`` pointing at models written by the layer
build's own function, and a ``sitecustomize`` that makes the pruned modules unimportable
(this machine's virtualenv has them; the layer does not). Tests use it so the Lambda path
is exercised as deployed; ``benchmarks/bench_coldstart.py`` measures with it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SITECUSTOMIZE = '''"""Written by tests/support/layer_layout.py: not in the Lambda layer."""
import sys

PRUNED = {pruned!r}


class _NotInTheLayer:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in PRUNED):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the layer)", name=name)
        return None


sys.meta_path.insert(0, _NotInTheLayer)
'''


def layer_layout(workdir: Path) -> tuple[Path, Path]:
    """(botocore data folder, folder holding the sitecustomize), written under ``workdir``
    once."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from layers import build

    data, site = workdir / build.BOTOCORE_DATA, workdir / "site"
    if not (data / "endpoints.json").is_file():
        build.write_botocore_models(data)
    if not (site / "sitecustomize.py").is_file():
        site.mkdir(parents=True, exist_ok=True)
        text = _SITECUSTOMIZE.format(pruned=build.PRUNED_MODULES)
        (site / "sitecustomize.py").write_text(text)
    return data, site


def deployed_env(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """``env`` plus the layer's layout (``PYTHONPATH`` extended, ``AWS_DATA_PATH`` set) and
    what every function's environment adds for it (``infra/functions.py``)."""
    data, site = layer_layout(workdir)
    path = env.get("PYTHONPATH", "")
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in (path, str(site)) if p),
        "AWS_DATA_PATH": str(data),
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
