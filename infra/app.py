"""The Stratus CDK app: ``npx cdk synth`` / ``npx cdk deploy`` run this (see cdk.json).

Five stacks: <prefix>Storage (bucket, table, event queue, access secrets; retained),
<prefix>Api, <prefix>Sync, <prefix>Reconcile, <prefix>Monitoring; with ``fallback = cache``
a sixth, <prefix>Fill (cache fill queue and function). Settings: infra/settings.py.
cdk-nag's AwsSolutions pack validates the app on every synth; each acknowledged finding
carries its one-line reason next to the resource it concerns.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, REPO_ROOT / "functions"):  # run from a checkout, installed or not
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.api import ApiStack  # noqa: E402
from infra.fill import FillStack  # noqa: E402
from infra.functions import LayerNotBuilt  # noqa: E402
from infra.monitoring import MonitoringStack  # noqa: E402
from infra.reconcile import ReconcileStack  # noqa: E402
from infra.settings import DeploySettings  # noqa: E402
from infra.storage import StorageStack  # noqa: E402
from infra.sync import SyncStack  # noqa: E402
from infra.uploads import UploadsStack  # noqa: E402


def build_app(app: cdk.App | None = None, *, nag: bool = True) -> cdk.App:
    app = app or cdk.App()
    settings = DeploySettings.from_node(app.node)
    env = None
    if os.environ.get("CDK_DEFAULT_ACCOUNT") and os.environ.get("CDK_DEFAULT_REGION"):
        env = cdk.Environment(
            account=os.environ["CDK_DEFAULT_ACCOUNT"], region=os.environ["CDK_DEFAULT_REGION"]
        )
    prefix = settings.stack_names_prefix
    common: dict[str, Any] = {"settings": settings, "env": env}
    storage = StorageStack(app, f"{prefix}Storage", **common)
    fill = (
        FillStack(app, f"{prefix}Fill", **common, storage=storage) if settings.fills_cache else None
    )
    uploads = UploadsStack(app, f"{prefix}Uploads", **common, storage=storage)
    api = ApiStack(app, f"{prefix}Api", **common, storage=storage, fill=fill, uploads=uploads)
    sync = SyncStack(app, f"{prefix}Sync", **common, storage=storage)
    reconcile = ReconcileStack(app, f"{prefix}Reconcile", **common, storage=storage)
    MonitoringStack(
        app,
        f"{prefix}Monitoring",
        **common,
        dead_letters=storage.dead_letters,
        events_queue=storage.events,
        reconcile_failures=storage.reconcile_failures,
        completion_failures=uploads.failures,
        http_api=api.http_api,
        table=storage.table,
        functions={
            "Api": api.api_function,
            "Sync": sync.sync_function,
            "Reconcile": reconcile.reconcile_function,
            "UploadCompletion": uploads.completion_function,
            **({"Fill": fill.fill_function} if fill is not None else {}),
        },
        fill_dead_letters=fill.dead_letters if fill is not None else None,
    )
    cdk.Tags.of(app).add("project", "stratus")
    if settings.stage:
        cdk.Tags.of(app).add("stage", settings.stage)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context: the CLI passes it, a direct ``python infra/app.py`` does not."""
    return json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {})


def main() -> None:
    try:
        # Context from the CLI (cdk.json, -c) takes precedence over these defaults.
        app = build_app(cdk.App(context=cdk_json_context()))
    except LayerNotBuilt as exc:
        sys.exit(str(exc))
    app.synth()


if __name__ == "__main__":
    main()
