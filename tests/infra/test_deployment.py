"""How the API function is released and sized: SnapStart, the alias ``live``, CodeDeploy
traffic shifting with automatic rollback, reserved concurrency, the LDAP layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .test_templates import only, resources

LDAP_CONFIG = "[stratus]\npypi.auth = ldap\nauth.ldap.url = ldaps://ldap.example.com\n"


def non_default_variant(synth, tmp_path_factory) -> dict[str, Any]:
    """Every release/sizing option away from its default, with the LDAP backend."""
    config = Path(tmp_path_factory.getbasetemp()) / "ldap-stratus.ini"
    config.write_text(LDAP_CONFIG)
    return synth(
        api_snapstart="false",
        api_deployment="linear_10_percent_every_1_minute",
        api_reserved_concurrency="50",
        sync_reserved_concurrency="0",
        access_backend="ldap",
        access_config_file=str(config),
    )


@pytest.fixture(scope="module")
def variant(synth, tmp_path_factory) -> dict[str, dict[str, Any]]:
    out = non_default_variant(synth, tmp_path_factory)
    return {name: out["stacks"][f"Stratus{name}"].template for name in ("Api", "Sync")}


def logical_id(template: dict[str, Any], kind: str) -> str:
    found = resources(template, kind)
    assert len(found) == 1, found
    return next(iter(found))


# --- SnapStart, version and alias ----------------------------------------------------------


def test_api_function_snapshots_published_versions(templates):
    fn = only(templates["Api"], "AWS::Lambda::Function")["Properties"]
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}


def test_api_gateway_invokes_the_live_alias_of_a_published_version(templates):
    api = templates["Api"]
    fn_id = logical_id(api, "AWS::Lambda::Function")
    version_id = logical_id(api, "AWS::Lambda::Version")
    alias_id = logical_id(api, "AWS::Lambda::Alias")
    assert only(api, "AWS::Lambda::Version")["Properties"]["FunctionName"] == {"Ref": fn_id}
    alias = only(api, "AWS::Lambda::Alias")["Properties"]
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    integration = only(api, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationUri"] == {"Ref": alias_id}
    permission = only(api, "AWS::Lambda::Permission")["Properties"]
    assert permission["FunctionName"] == {"Ref": alias_id}  # the alias only, not $LATEST
    assert permission["Principal"] == "apigateway.amazonaws.com"


def test_snapstart_can_be_turned_off_and_the_alias_stays(variant):
    api = variant["Api"]
    assert "SnapStart" not in only(api, "AWS::Lambda::Function")["Properties"]
    alias_id = logical_id(api, "AWS::Lambda::Alias")
    integration = only(api, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationUri"] == {"Ref": alias_id}


def test_no_function_forbids_bytecode(templates):
    for name in ("Api", "Sync", "Reconcile"):
        fn = only(templates[name], "AWS::Lambda::Function")["Properties"]
        assert "PYTHONDONTWRITEBYTECODE" not in fn["Environment"]["Variables"], name


def test_assets_keep_their_bytecode(default_synth):
    """What CDK zips for the API function and its layer still holds the compiled modules."""
    api = default_synth["stacks"]["StratusApi"].template
    outdir = Path(default_synth["outdir"])
    fn = only(api, "AWS::Lambda::Function")["Properties"]
    layer = only(api, "AWS::Lambda::LayerVersion")["Properties"]
    for code, probe in (
        (fn["Code"], "stratus/handlers/__pycache__/api.cpython-312.pyc"),
        (layer["Content"], "python/mangum/__pycache__/adapter.cpython-312.pyc"),
    ):
        asset = outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"
        assert (asset / probe).is_file(), (asset, probe)
        assert not (asset / "tests").exists() and not (asset / "infra").exists()


# --- CodeDeploy --------------------------------------------------------------------------


def deployment_group(template: dict[str, Any]) -> dict[str, Any]:
    return only(template, "AWS::CodeDeploy::DeploymentGroup")["Properties"]


def test_the_alias_moves_by_canary_and_rolls_back_on_the_alarms(templates):
    api = templates["Api"]
    group = deployment_group(api)
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert set(group["AutoRollbackConfiguration"]["Events"]) >= {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert group["AlarmConfiguration"]["Enabled"] is True
    watched = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
    alarms = resources(api, "AWS::CloudWatch::Alarm")
    assert watched == set(alarms)
    by_metric = {a["Properties"]["MetricName"]: a["Properties"] for a in alarms.values()}
    assert set(by_metric) == {"Errors", "5xx"}
    # errors of the version being deployed, invoked through the alias
    version_id = logical_id(api, "AWS::Lambda::Version")
    dimensions = {d["Name"]: d["Value"] for d in by_metric["Errors"]["Dimensions"]}
    assert dimensions["ExecutedVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    assert "live" in json.dumps(dimensions["Resource"])
    assert by_metric["Errors"]["Threshold"] == 1
    # the API's server errors, at the monitoring stack's threshold
    dimensions = {d["Name"]: d["Value"] for d in by_metric["5xx"]["Dimensions"]}
    assert dimensions["ApiId"] == {"Ref": logical_id(api, "AWS::ApiGatewayV2::Api")}
    assert by_metric["5xx"]["Threshold"] == 5
    for alarm in by_metric.values():  # short periods: a five-minute canary sees them fire
        assert alarm["Period"] == 60
        assert alarm["TreatMissingData"] == "notBreaching"
    assert {"DeploymentApplicationName", "DeploymentGroupName"} <= api["Outputs"].keys()
    alias = only(api, "AWS::Lambda::Alias")
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["DeploymentGroupName"] == {
        "Ref": logical_id(api, "AWS::CodeDeploy::DeploymentGroup")
    }


def test_codedeploy_may_move_only_this_alias_and_read_only_its_alarms(templates):
    api = templates["Api"]
    group = deployment_group(api)
    role_id = group["ServiceRoleArn"]["Fn::GetAtt"][0]
    role = resources(api, "AWS::IAM::Role")[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
    policy = next(
        p["Properties"]
        for p in resources(api, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    )
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {"ShiftTheLiveAlias", "ReadRollbackAlarms"}
    fn_id = logical_id(api, "AWS::Lambda::Function")
    alias_id = logical_id(api, "AWS::Lambda::Alias")
    assert statements["ShiftTheLiveAlias"]["Resource"] == [
        {"Fn::GetAtt": [fn_id, "Arn"]},
        {"Ref": alias_id},
    ]
    alarm_arns = {json.dumps(r) for r in statements["ReadRollbackAlarms"]["Resource"]}
    assert alarm_arns == {
        json.dumps({"Fn::GetAtt": [alarm_id, "Arn"]})
        for alarm_id in resources(api, "AWS::CloudWatch::Alarm")
    }


def test_traffic_shifting_is_an_option(variant):
    group = deployment_group(variant["Api"])
    assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"


def test_every_documented_choice_is_a_codedeploy_configuration():
    from aws_cdk import aws_codedeploy as codedeploy

    from infra.settings import API_DEPLOYMENTS

    assert "canary_10_percent_5_minutes" in API_DEPLOYMENTS
    assert "all_at_once" in API_DEPLOYMENTS
    for name in API_DEPLOYMENTS:
        assert getattr(codedeploy.LambdaDeploymentConfig, name.upper()) is not None


# --- concurrency -------------------------------------------------------------------------


def test_sync_has_reserved_concurrency_and_the_api_none_by_default(templates):
    sync = only(templates["Sync"], "AWS::Lambda::Function")["Properties"]
    assert sync["ReservedConcurrentExecutions"] == 5
    mapping = only(templates["Sync"], "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= sync["ReservedConcurrentExecutions"]
    api = only(templates["Api"], "AWS::Lambda::Function")["Properties"]
    assert "ReservedConcurrentExecutions" not in api


def test_reserved_concurrency_is_configurable(variant):
    api = only(variant["Api"], "AWS::Lambda::Function")["Properties"]
    assert api["ReservedConcurrentExecutions"] == 50
    sync = only(variant["Sync"], "AWS::Lambda::Function")["Properties"]
    assert "ReservedConcurrentExecutions" not in sync


# --- the LDAP layer ------------------------------------------------------------------------


def test_ldap3_layer_only_with_the_ldap_backend(templates, variant):
    def layer_descriptions(template: dict[str, Any]) -> list[str]:
        fn = only(template, "AWS::Lambda::Function")["Properties"]
        layers = resources(template, "AWS::Lambda::LayerVersion")
        return sorted(layers[ref["Ref"]]["Properties"]["Description"] for ref in fn["Layers"])

    assert not any("LDAP" in d for d in layer_descriptions(templates["Api"]))
    assert not any("LDAP" in d for d in layer_descriptions(templates["Sync"]))
    with_ldap = layer_descriptions(variant["Api"])
    assert len(with_ldap) == 3  # dependencies, access config, ldap3
    assert any("LDAP" in d for d in with_ldap)
    env = only(variant["Api"], "AWS::Lambda::Function")["Properties"]["Environment"]
    assert env["Variables"]["STRATUS_AUTH"] == "ldap"
    assert not any("LDAP" in d for d in layer_descriptions(variant["Sync"]))


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"api_deployment": "canary_50_percent"}, "api_deployment must be one of"),
        ({"api_reserved_concurrency": "-1"}, "api_reserved_concurrency"),
        ({"sync_reserved_concurrency": "3"}, "at least sync_max_concurrency"),
        ({"access_backend": "ldap"}, "needs access_config_file"),
    ],
)
def test_invalid_release_settings_are_refused(context, message):
    import aws_cdk as cdk

    from infra.settings import DeploySettings

    with pytest.raises(ValueError, match=message):
        DeploySettings.from_node(cdk.App(context=context).node)
