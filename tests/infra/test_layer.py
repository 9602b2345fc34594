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
AWS_SDK = {"boto3", "botocore", "s3transfer"}  # shipped, pinned, botocore trimmed
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


def _names(lines: list[str]) -> set[str]:
    return {Requirement(line).name.lower() for line in lines}


# `stratus serve`'s server: a core dependency of the package, never run in Lambda.
LOCAL_ONLY = {"uvicorn"}


def test_layer_inputs_are_the_runtime_dependencies():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        str(Requirement(r))
        for r in [*project["dependencies"], *extras["aws"], *extras["ldap"]]
        if Requirement(r).name.lower() not in LOCAL_ONLY
    }
    lines = [
        line.strip()
        for line in (LAYERS / "requirements.in").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {str(Requirement(line)) for line in lines} == wanted, (
        "layers/requirements.in must list pyproject's dependencies and its aws and ldap "
        "extras, minus uvicorn; after editing it run: "
        "python layers/build.py --lock && python layers/build.py"
    )


def test_lock_is_complete_pinned_and_hashed_with_the_aws_sdk():
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
    assert inputs <= names
    assert AWS_SDK | {"urllib3", "python-dateutil"} <= names  # with what botocore needs
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


def test_built_layer_holds_the_dependencies_and_the_aws_sdk(built_layer):
    target = LAYERS / "build" / "main" / "python"
    for package in ("starlette", "mangum", "pynamodb", "aws_lambda_powertools", "multipart"):
        assert (target / package).is_dir(), package
    assert all((target / name).is_dir() for name in AWS_SDK)
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


def test_the_layer_has_no_pydantic_v1_and_a_trimmed_botocore(built_layer):
    from layers import build

    python = LAYERS / "build" / "main" / "python"
    assert (python / "pydantic" / "main.py").is_file()
    assert not (python / "pydantic" / "v1").exists()
    data = python / "botocore" / "data"
    services = sorted(p.name for p in data.iterdir() if p.is_dir())
    assert services == sorted(build.LAMBDA_AWS_SERVICES)
    for service in services:
        (version,) = (data / service).iterdir()  # the newest API version only
        assert (version / "service-2.json").is_file(), service
        assert list(version.glob("endpoint-rule-set-1.json*")), service  # kept whole
        assert not list(version.glob("service-2.json.gz")) + list(version.glob("examples-1*"))
    endpoints = json.loads((data / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        assert set(partition["services"]) <= set(build.LAMBDA_AWS_SERVICES)
    assert "dynamodb" in endpoints["partitions"][0]["services"]
    assert sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) < 2_000_000


# What a botocore tells of the functions' services: run by each botocore in a child process,
# since botocore treats data in its own package (as the layer's is) unlike data elsewhere.
BOTOCORE_PROBE = """
import json, sys
import botocore, botocore.session
from botocore.config import Config

session = botocore.session.get_session()
report = {"botocore": botocore.__file__, "services": session.get_available_services()}
for service in sys.argv[1:]:
    model = session.get_service_model(service)
    ops = {}
    for name in model.operation_names:
        op = model.operation_model(name)
        ops[name] = [
            op.http,
            bool(op.documentation),
            [list(getattr(s, "members", {})) if s is not None else None
             for s in (op.input_shape, op.output_shape)],
        ]
    endpoints = {}
    for region in ("us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"):
        client = session.create_client(
            service, region_name=region, aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret", config=Config(signature_version="s3v4"),
        )
        endpoints[region] = client.meta.endpoint_url
        if service == "s3":
            url = client.generate_presigned_url(
                "get_object", {"Bucket": "stratus-packages", "Key": "packages/a/a-1.whl"}
            )
            endpoints[region + " presigned"] = url.split("X-Amz-Date")[0]
    report[service] = {
        "operations": ops,
        "context": model.client_context_parameters and
            [p.name for p in model.client_context_parameters],
        "endpoints": endpoints,
    }
print(json.dumps(report))
"""


def test_the_trimmed_botocore_knows_only_its_services_and_works_as_the_whole_one(tmp_path):
    """The layout the cold-start tests run (``layer_layout``, trimmed by the layer build's
    ``trim_botocore_data``) against this virtualenv's botocore: only the functions'
    services exist, their models are the same without documentation, and clients resolve
    the same endpoints and presign the same URLs in every partition."""
    import os
    import subprocess
    import sys

    from layers import build
    from tests.support.layer_layout import layer_layout

    site = layer_layout(tmp_path)

    def probe(*path: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["PYTHONPATH"] = os.pathsep.join(path)
        command = [sys.executable, "-c", BOTOCORE_PROBE, *build.LAMBDA_AWS_SERVICES]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return json.loads(result.stdout)

    trimmed, whole = probe(str(site)), probe()
    assert trimmed.pop("botocore").startswith(str(site))
    assert not whole.pop("botocore").startswith(str(site))
    assert trimmed.pop("services") == sorted(build.LAMBDA_AWS_SERVICES)
    assert len(whole.pop("services")) > 300
    for service in build.LAMBDA_AWS_SERVICES:
        ours, theirs = trimmed[service], whole[service]
        assert ours["endpoints"] == theirs["endpoints"], service
        assert ours["context"] == theirs["context"], service
        assert ours["operations"].keys() == theirs["operations"].keys(), service
        for name, (http, documented, shapes) in ours["operations"].items():
            assert not documented, (service, name)
            assert [http, shapes] == [theirs["operations"][name][i] for i in (0, 2)], name
        assert any(documented for _, documented, _ in theirs["operations"].values())


def test_every_aws_service_the_functions_call_has_its_trimmed_model():
    from layers import build

    called = {"dynamodb"}  # pynamodb's own client
    for source in (REPO_ROOT / "functions" / "stratus").rglob("*.py"):
        text = source.read_text()
        called |= set(re.findall(r"""(?:new_client|\.client)\(\s*["']([a-z0-9-]+)["']""", text))
    assert called <= set(build.LAMBDA_AWS_SERVICES), called - set(build.LAMBDA_AWS_SERVICES)
    assert {"s3", "secretsmanager", "sqs", "logs"} <= called


def test_every_function_skips_pydantic_plugins(templates):
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
        assert "AWS_DATA_PATH" not in env  # the layer's botocore has what it needs
        assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
