"""The dependency layers and the function code: lock, build, bytecode, synth checks."""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .conftest import REPO_ROOT

LAYERS = REPO_ROOT / "layers"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
# Import names that only tests or the CDK app use: never in a layer or the function code.
NOT_FOR_LAMBDA = ("pytest", "moto", "aws_cdk", "constructs", "jsii", "cdk_nag", "cfnlint", "infra")
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked
PY312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"  # importlib.util.MAGIC_NUMBER of 3.12


def pyc_for(source: Path) -> Path:
    tag = "cpython-312"
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"


def check_bytecode(tree: Path, lambda_path: str) -> int:
    """Every module under ``tree`` has an unchecked hash-based cp312 pyc naming its
    path in Lambda; returns how many."""
    sources = sorted(tree.rglob("*.py"))
    assert sources
    for source in sources:
        pyc = pyc_for(source)
        assert pyc.is_file(), source
        data = pyc.read_bytes()
        assert data[:4] == PY312_MAGIC, pyc
        if data[:4] == importlib.util.MAGIC_NUMBER:
            # this interpreter reads it: the code object names the file where Lambda has it
            code = marshal.loads(data[16:])
            assert code.co_filename == f"{lambda_path}/{source.relative_to(tree)}"
        assert int.from_bytes(data[4:8], "little") == UNCHECKED_HASH, pyc
    return len(sources)


# Listed in requirements.in (the app imports it) but provided by the runtime (with botocore),
# so the lock leaves it out (layers/build.py RUNTIME_PROVIDED).
NOT_LOCKED = {"urllib3"}


def _names(lines: list[str]) -> set[str]:
    return {Requirement(line).name.lower() for line in lines}


# `stratus serve`'s server: a core dependency of the package, never run in Lambda.
LOCAL_ONLY = {"uvicorn"}


def test_layer_inputs_are_the_runtime_dependencies_minus_boto3():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        str(Requirement(r))
        for r in [*project["dependencies"], *extras["aws"], *extras["ldap"]]
        if Requirement(r).name.lower() not in RUNTIME_PROVIDED | LOCAL_ONLY
    }
    lines = [
        line.strip()
        for line in (LAYERS / "requirements.in").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {str(Requirement(line)) for line in lines} == wanted, (
        "layers/requirements.in must list pyproject's dependencies and its aws and ldap "
        "extras, minus boto3 and uvicorn; after editing it run: "
        "python layers/build.py --lock && python layers/build.py"
    )


def test_lock_is_complete_pinned_hashed_and_without_boto():
    text = (LAYERS / "requirements.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, flags=re.MULTILINE)
    names = {name.lower() for name, _ in pins}
    inputs = _names(
        [
            line
            for line in (LAYERS / "requirements.in").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    )
    assert inputs - NOT_LOCKED <= names
    assert not names & (RUNTIME_PROVIDED | NOT_LOCKED)
    # every pin carries at least one sha256 (pip --require-hashes)
    blocks = re.split(r"^(?=[A-Za-z0-9_.\-]+==)", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(pins)
    assert all("--hash=sha256:" in block for block in blocks)


def test_build_script_targets_lambda_python_and_arm64():
    source = (LAYERS / "build.py").read_text()
    for needle in (
        '"manylinux2014_aarch64"',
        "--only-binary=:all:",
        '"--implementation", "cp"',
        'PYTHON_VERSION = "3.12"',
        "--require-hashes",
        "--no-deps",
        '"--invalidation-mode"',
        '"unchecked-hash"',
    ):
        assert needle in source


def test_built_layer_holds_the_dependencies_and_no_boto(built_layer):
    target = LAYERS / "build" / "main" / "python"
    for package in ("starlette", "mangum", "pynamodb", "aws_lambda_powertools", "multipart"):
        assert (target / package).is_dir(), package
    assert not any((target / name).exists() for name in RUNTIME_PROVIDED)
    # binary wheels for the Lambda platform, not for this machine
    binaries = [p.name for p in target.glob("_cffi_backend*.so")]
    assert binaries and all("aarch64" in name for name in binaries)


def test_ldap3_is_in_its_own_layer_with_what_only_it_needs(built_layer):
    main = LAYERS / "build" / "main" / "python"
    ldap = LAYERS / "build" / "ldap" / "python"
    assert not (main / "ldap3").exists() and not (main / "pyasn1").exists()
    assert sorted(p.name for p in ldap.iterdir() if not p.name.endswith(".dist-info")) == [
        "ldap3",
        "pyasn1",
    ]


def test_layers_hold_nothing_only_tests_or_the_cdk_need(built_layer):
    for layer in ("main", "ldap"):
        target = LAYERS / "build" / layer / "python"
        assert not [name for name in NOT_FOR_LAMBDA if (target / name).exists()], layer
    lock = (LAYERS / "requirements.txt").read_text().lower()
    for name in ("pytest", "moto", "aws-cdk", "constructs", "jsii", "cdk-nag", "cfn-lint"):
        assert f"\n{name}==" not in lock, name


def test_layers_ship_hash_based_bytecode_for_python312(built_layer):
    for layer in ("main", "ldap"):
        assert check_bytecode(LAYERS / "build" / layer / "python", "/opt/python") > 10


def test_the_lock_splits_by_what_each_package_is_there_for():
    from layers.build import extra_layer_packages, lock_blocks

    lock = (
        "ldap3==2.9.1 \\\n    --hash=sha256:aa\n    # via -r layers/requirements.in\n"
        "pyasn1==0.6.1 \\\n    --hash=sha256:bb\n    # via ldap3\n"
        "shared==1.0 \\\n    --hash=sha256:cc\n    # via\n    #   ldap3\n    #   mangum\n"
        "mangum==0.19 \\\n    --hash=sha256:dd\n    # via -r layers/requirements.in\n"
        "deep==1.0 \\\n    --hash=sha256:ee\n    # via pyasn1\n"
        "\n# The following packages were excluded from the output:\n# botocore\n"
    )
    blocks = lock_blocks(lock)
    assert set(blocks) == {"ldap3", "pyasn1", "shared", "mangum", "deep"}
    assert blocks["shared"][1] == {"ldap3", "mangum"}
    # what ldap3 alone needs (directly or not) moves; what the main layer needs stays
    assert extra_layer_packages(blocks, ("ldap3",)) == {"ldap3", "pyasn1", "deep"}


def test_synth_without_a_built_layer_says_how_to_build_it(monkeypatch, tmp_path):
    from infra import functions
    from layers import build

    monkeypatch.setattr(build, "MAIN", tmp_path / "missing" / "main")
    monkeypatch.setattr(build, "STAMP", tmp_path / "missing" / "STAMP")
    with pytest.raises(functions.LayerNotBuilt, match=r"python layers/build\.py"):
        functions.check_layer_built()


def test_a_stale_layer_is_refused(monkeypatch, tmp_path):
    from infra import functions
    from layers import build

    (tmp_path / "main" / "python").mkdir(parents=True)
    (tmp_path / "STAMP").write_text("0" * 64 + "\n")
    monkeypatch.setattr(build, "MAIN", tmp_path / "main")
    monkeypatch.setattr(build, "STAMP", tmp_path / "STAMP")
    with pytest.raises(functions.LayerNotBuilt):
        functions.check_layer_built()


# --- the function code asset ------------------------------------------------------------


def test_function_code_is_the_package_with_bytecode_and_nothing_else():
    from infra.functions import staged_code

    staged = staged_code()
    assert sorted(p.name for p in staged.iterdir()) == ["stratus"]
    assert (staged / "stratus" / "handlers" / "api.py").is_file()
    assert check_bytecode(staged, "/var/task") >= 30
    for path in staged.rglob("*"):
        assert path.name != "tests" and not path.name.endswith(".egg-info"), path
        if path.suffix == ".pyc":  # ours only: no stale cache of this checkout came along
            assert path.parent.name == "__pycache__" and ".cpython-312." in path.name
    assert staged_code() == staged  # named by content: the next synth reuses it


# --- what the layer leaves out or trims -------------------------------------------------


def test_the_layer_has_no_pydantic_v1_and_trimmed_botocore_models(built_layer):
    from layers import build

    main = LAYERS / "build" / "main"
    assert (main / "python" / "pydantic" / "main.py").is_file()
    assert not (main / "python" / "pydantic" / "v1").exists()
    data = main / build.BOTOCORE_DATA
    models = sorted(p.relative_to(data).parts[0] for p in data.glob("*/*/service-2.json"))
    assert models == sorted(build.LAMBDA_AWS_SERVICES)
    endpoints = json.loads((data / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        assert set(partition["services"]) <= set(build.LAMBDA_AWS_SERVICES)
    assert "dynamodb" in endpoints["partitions"][0]["services"]
    assert sum(p.stat().st_size for p in data.rglob("*.json")) < 1_000_000


def test_trimmed_models_are_botocores_minus_docs_and_come_first(tmp_path, monkeypatch):
    """botocore reads ``AWS_DATA_PATH`` before its own data: the proof is a model whose
    copy there lost an operation. Otherwise the trimmed model is the original without its
    operations' and shapes' documentation."""
    import botocore.session

    from layers import build

    build.write_botocore_models(tmp_path)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    for service in build.LAMBDA_AWS_SERVICES:
        trimmed = botocore.session.Session().get_service_model(service)
        monkeypatch.delenv("AWS_DATA_PATH")
        original = botocore.session.Session().get_service_model(service)
        monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
        assert trimmed.operation_names == original.operation_names, service
        assert trimmed.client_context_parameters == original.client_context_parameters
        for name in original.operation_names:
            op, orig = trimmed.operation_model(name), original.operation_model(name)
            assert op.documentation == "" and op.http == orig.http, (service, name)
            for ours, theirs in (
                (op.input_shape, orig.input_shape),
                (op.output_shape, orig.output_shape),
            ):
                assert (ours is None) == (theirs is None), (service, name)
                if ours is not None:
                    assert list(getattr(ours, "members", {})) == list(
                        getattr(theirs, "members", {})
                    ), (service, name)
    (model_file,) = (tmp_path / "dynamodb").glob("*/service-2.json")
    model = json.loads(model_file.read_text())
    del model["operations"]["Query"]
    model_file.write_text(json.dumps(model))
    assert "Query" not in botocore.session.Session().get_service_model("dynamodb").operation_names


def test_every_aws_service_the_functions_call_has_its_trimmed_model():
    from layers import build

    called = {"dynamodb"}  # pynamodb's own client
    for source in (REPO_ROOT / "functions" / "stratus").rglob("*.py"):
        text = source.read_text()
        called |= set(re.findall(r"""(?:new_client|\.client)\(\s*["']([a-z0-9-]+)["']""", text))
    assert called <= set(build.LAMBDA_AWS_SERVICES), called - set(build.LAMBDA_AWS_SERVICES)
    assert {"s3", "secretsmanager", "sqs", "logs"} <= called


def test_every_function_reads_the_trimmed_models_and_skips_pydantic_plugins(templates):
    from layers import build

    functions = [
        resource
        for template in templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and "stratus.handlers" in str(resource["Properties"].get("Handler", ""))
    ]
    assert len(functions) >= 4  # api, sync, reconcile, upload completion
    for fn in functions:
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["AWS_DATA_PATH"] == build.LAMBDA_DATA_PATH == "/opt/botocore-data"
        assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
