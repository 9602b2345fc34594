"""Run a function in a fresh Python process laid out as the main Lambda layer is.

The layer (``layers/build.py``) leaves out ``PRUNED`` (``pydantic/v1``) and ships a
botocore whose data holds only the services the functions call. ``deployed_env`` gives a
child process the same: first on its path, a copy of this virtualenv's botocore trimmed
by the layer build's own function, and a ``sitecustomize`` that makes the pruned modules
unimportable (this machine's virtualenv has them; the layer does not). Tests use it so
the Lambda path is exercised as deployed; ``benchmarks/bench_coldstart.py`` measures with it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
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


def layer_layout(workdir: Path) -> Path:
    """The folder to put first on a child's path (the trimmed botocore, the
    sitecustomize), written under ``workdir`` once."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import botocore

    from layers import build

    site = workdir / "site"
    stamp = f"{build.LAYOUT}; botocore {botocore.__version__}"
    if _stamp(site) == stamp:
        return site
    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="site.", dir=workdir))
    source = Path(botocore.__file__).parent

    def not_copied(folder: str, names: list[str]) -> set[str]:
        skipped = {"__pycache__"}
        if Path(folder) == source / "data":  # other services' models: trimmed away anyway
            skipped |= {n for n in names if "." not in n and n not in build.LAMBDA_AWS_SERVICES}
        return skipped & set(names)

    shutil.copytree(source, staging / "botocore", ignore=not_copied)
    build.trim_botocore_data(staging / "botocore" / "data")
    (staging / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(pruned=build.PRUNED_MODULES))
    (staging / "STAMP").write_text(stamp)
    if site.exists() and _stamp(site) != stamp:  # an older layout
        shutil.rmtree(site, ignore_errors=True)
    try:
        staging.rename(site)
    except OSError:  # another process made it first
        shutil.rmtree(staging, ignore_errors=True)
    return site


def _stamp(site: Path) -> str | None:
    try:
        return (site / "STAMP").read_text()
    except OSError:
        return None


def deployed_env(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """``env`` plus the layer's layout (``PYTHONPATH`` extended) and what every function's
    environment adds for it (``infra/functions.py``)."""
    site = layer_layout(workdir)
    path = env.get("PYTHONPATH", "")
    return {
        **env,
        # the trimmed botocore before this virtualenv's, as the layer's is before the runtime's
        "PYTHONPATH": os.pathsep.join(p for p in (str(site), path) if p),
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
