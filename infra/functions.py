"""What every Stratus Lambda function shares: code, dependency layer, role, log group.

* Code: the ``functions/`` folder (the ``stratus`` package), without caches, build
  leftovers or tests, staged at synth with bytecode compiled for the runtime's Python
  (hash-based ``.pyc``, as ``layers/build.py`` does for the layers), so no cold start
  compiles a module. Dependencies come from the layers built by ``layers/build.py``
  (``ldap3`` in its own layer, attached only where LDAP is used); boto3 comes from the
  python3.12 runtime.
* Role: no managed policy. Each function's role may write to its own log group and gets
  exactly the statements its stack adds (see each stack).
* Logs: an explicit log group with the configured retention, JSON log format, so the
  ``logging`` lines of ``stratus.*`` modules come out as JSON too; ``log_level`` is both
  Lambda's application log level and Powertools' (``POWERTOOLS_LOG_LEVEL``).
* Telemetry: X-Ray active tracing (Powertools' Tracer in ``handlers/telemetry.py``
  patches the AWS SDK); ``POWERTOOLS_SERVICE_NAME`` names the function's service, which
  is also the ``service`` dimension of its metrics, in the one ``metrics_namespace``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from layers import build as layer_build

from .settings import DeploySettings

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"

RUNTIME = lambda_.Runtime.PYTHON_3_12  # the layers are built for cp312: change both together
ARCHITECTURE = lambda_.Architecture.ARM_64
# Never part of the function code: caches, build leftovers, tests.
CODE_EXCLUDES = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", "tests")
CONFIG_MOUNT = "/opt/stratus-config"  # where the access-config layer's files appear

LAYER_MISSING = (
    "The Lambda dependency layers are not built (or are older than layers/requirements.txt).\n"
    "Build them first:  python layers/build.py\n"
    "(it downloads manylinux aarch64 wheels for Python 3.12 into layers/build/)"
)


class LayerNotBuilt(RuntimeError):
    pass


def check_layer_built() -> None:
    """Refuse to synthesize with missing or stale dependency layers."""
    if not layer_build.is_current():
        raise LayerNotBuilt(LAYER_MISSING)


def _code_files() -> list[Path]:
    return sorted(
        path
        for path in FUNCTIONS_DIR.rglob("*")
        if path.is_file()
        and not any(
            fnmatch.fnmatch(part, pattern)
            for part in path.relative_to(FUNCTIONS_DIR).parts
            for pattern in CODE_EXCLUDES
        )
    )


def staged_code() -> Path:
    """The function code with its bytecode, staged outside the checkout, named by content.

    Concurrent synths agree on the folder, nothing lands in the repository, and the asset
    hash follows the sources (and the layer layout, which fixes how they are compiled).
    """
    files = _code_files()
    digest = hashlib.sha256(layer_build.LAYOUT.encode())
    for path in files:
        digest.update(str(path.relative_to(FUNCTIONS_DIR)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    staging = Path(tempfile.gettempdir()) / f"stratus-code-{digest.hexdigest()[:16]}"
    if not staging.is_dir():
        partial = Path(tempfile.mkdtemp(prefix="stratus-code-"))
        for path in files:
            target = partial / path.relative_to(FUNCTIONS_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        for folder in [partial, *(p for p in partial.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)  # readable in Lambda whatever this machine's umask
        for path in partial.rglob("*.py"):
            path.chmod(0o644)
        layer_build.compile_for_lambda(partial, layer_build.LAMBDA_TASK_ROOT)
        for path in partial.rglob("*.pyc"):
            path.chmod(0o644)
        try:
            partial.rename(staging)
        except OSError:  # another synth staged the same content first
            shutil.rmtree(partial, ignore_errors=True)
    return staging


def code_asset() -> lambda_.Code:
    return lambda_.Code.from_asset(str(staged_code()))


def _layer(
    scope: Construct, construct_id: str, folder: Path, description: str
) -> lambda_.LayerVersion:
    check_layer_built()
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(str(folder)),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description=description,
    )


def dependency_layer(scope: Construct) -> lambda_.LayerVersion:
    return _layer(
        scope,
        "Dependencies",
        layer_build.MAIN,
        "Stratus dependencies (layers/requirements.txt), without boto3 and ldap3",
    )


def ldap_layer(scope: Construct) -> lambda_.LayerVersion:
    """ldap3 and what only it needs: for a deployment whose access backend is LDAP."""
    return _layer(
        scope, "LdapDependencies", layer_build.LDAP, "Stratus LDAP access backend (ldap3)"
    )


def config_source(config_file: str) -> Path:
    """``access_config_file`` as a path (relative to the repository root)."""
    source = Path(config_file)
    if not source.is_absolute():
        source = REPO_ROOT / source
    if not source.is_file():
        raise FileNotFoundError(f"access_config_file: {source} does not exist")
    return source


def check_config_backend(config_file: str, access_backend: str) -> None:
    """Refuse a config file whose ``pypi.auth`` names another backend than access_backend.

    STRATUS_AUTH (access_backend) overrides the file's ``pypi.auth`` in Lambda; a file
    written for another backend would otherwise be ignored without a word.
    """
    from stratus.adapters.config_access import read_ini
    from stratus.wiring import backend_kind  # also knows pypicloud's dotted names

    named = backend_kind(read_ini(config_source(config_file)).get("pypi.auth", ""))
    if named and named != access_backend:
        raise ValueError(
            f"access_config_file sets pypi.auth = {named} but access_backend is "
            f"{access_backend}; the deployment uses access_backend: set it, or remove "
            "pypi.auth from the file"
        )


def config_layer(scope: Construct, config_file: str) -> tuple[lambda_.LayerVersion, str]:
    """A layer holding the access config file; returns it and the file's path in Lambda.

    The file holds password *hashes* (``stratus hash-password``), never plain passwords;
    it stays out of environment variables and out of the function code asset.
    """
    source = config_source(config_file)
    data = source.read_bytes()
    # Staged outside the checkout, named by content: concurrent synths agree, nothing to
    # clean up in the repository, and the asset hash follows the file's content.
    digest = hashlib.sha256(source.name.encode() + b"\0" + data).hexdigest()[:16]
    staging = Path(tempfile.gettempdir()) / f"stratus-config-layer-{digest}"
    if not staging.is_dir():
        partial = Path(tempfile.mkdtemp(prefix="stratus-config-layer-"))
        (partial / "stratus-config").mkdir(mode=0o755)
        (partial / "stratus-config" / source.name).write_bytes(data)
        (partial / "stratus-config" / source.name).chmod(0o644)  # readable in Lambda
        try:
            partial.rename(staging)
        except OSError:  # another synth staged the same content first
            shutil.rmtree(partial, ignore_errors=True)
    layer = lambda_.LayerVersion(
        scope,
        "AccessConfig",
        code=lambda_.Code.from_asset(str(staging)),
        compatible_runtimes=[RUNTIME],
        description="Stratus access configuration (users, groups, package permissions)",
    )
    return layer, f"{CONFIG_MOUNT}/{source.name}"


class StratusFunction(Construct):
    """A python3.12 arm64 function of the ``stratus`` package with its own role and logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploySettings,
        handler: str,
        description: str,
        memory_mb: int,
        timeout_seconds: int,
        environment: dict[str, str],
        layers: Sequence[lambda_.ILayerVersion],
        reserved_concurrency: int = 0,
        snap_start: bool = False,
        ephemeral_storage_mb: int | None = None,
        service: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        # POWERTOOLS_SERVICE_NAME: "stratus-<id>" (stratus-api, stratus-sync...), the name
        # the function's handler gives its Logger.
        self.service = service or f"stratus-{construct_id.lower()}"
        self.reserved_concurrency = reserved_concurrency
        self.log_group = logs.LogGroup(self, "Logs", removal_policy=RemovalPolicy.DESTROY)
        cfn_log_group = self.log_group.node.default_child
        assert isinstance(cfn_log_group, logs.CfnLogGroup)
        cfn_log_group.retention_in_days = settings.log_retention_days or None

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (least privilege; no managed policies)",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code_asset(),
            layers=layers,
            description=description,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            environment={
                **environment,
                **telemetry_environment(settings, self.service),
                # no pydantic plugins here: skip scanning every package's entry points
                # for them on the first model (a cold start's few ms)
                "PYDANTIC_DISABLE_PLUGINS": "__all__",
            },
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency or None,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=getattr(
                lambda_.ApplicationLogLevel, LAMBDA_LOG_LEVELS[settings.log_level]
            ),
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            ephemeral_storage_size=(
                Size.mebibytes(ephemeral_storage_mb) if ephemeral_storage_mb else None
            ),
        )
        ack(
            self.function,
            "AwsSolutions-L1",
            "python3.12 is pinned: layers/build.py fetches cp312 wheels; upgrade both together",
        )
        # Tracing.ACTIVE added xray:PutTraceSegments and xray:PutTelemetryRecords on "*".
        ack(
            self.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray active tracing: PutTraceSegments/PutTelemetryRecords have no resource "
            "types, so IAM takes only '*' for them",
        )

    def allow(self, sid: str, actions: list[str], resources: list[str]) -> None:
        self.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))


# Powertools' level names → Lambda's application log levels (its JSON log filter).
LAMBDA_LOG_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "FATAL",
}


def telemetry_environment(settings: DeploySettings, service: str) -> dict[str, str]:
    """Powertools' variables of every function (never ``POWERTOOLS_TRACE_DISABLED``)."""
    return {
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": settings.metrics_namespace,
        "POWERTOOLS_LOG_LEVEL": settings.log_level,
    }


def ack(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``scope``, with its one-line reason."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
