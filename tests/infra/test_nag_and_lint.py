"""cdk-nag (AwsSolutions) on the whole app, and cfn-lint on every synthesized template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import STACKS
from .test_deployment import non_default_variant

# W3005 flags the explicit DependsOn that CDK adds next to a GetAtt (function → role);
# redundant but harmless, and not ours to remove.
CFN_LINT_IGNORED = ["W3005"]


def run_cfn_lint(templates: list[Path]) -> subprocess.CompletedProcess[str]:
    """cfn-lint on synthesized templates (run as a child: it reads its own argv)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            "--ignore-checks",
            *CFN_LINT_IGNORED,
            "--",
            *map(str, templates),
        ],
        capture_output=True,
        text=True,
    )


def acknowledgments(app: Any) -> list[tuple[str, str, str]]:
    from aws_cdk import Validations

    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule_id, reason in (entry.data or {}).items():
                    # CDK records them as "Annotation::<rule id>"
                    rule = rule_id.split("::", 1)[1] if "::" in rule_id.split("[")[0] else rule_id
                    found.append((construct.node.path, rule, reason))
    return found


def test_cdk_nag_finds_nothing_unacknowledged(default_synth):
    """The synth ran with AwsSolutionsChecks registered; a finding would have failed it."""
    report = json.loads(Path(default_synth["outdir"], "validation-report.json").read_text())
    violations = [
        violation
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert violations == []


def test_every_acknowledgment_has_a_one_line_reason(default_synth):
    acks = acknowledgments(default_synth["app"])
    assert acks, "expected the acknowledgments next to the resources they concern"
    for path, rule_id, reason in acks:
        assert rule_id.startswith("AwsSolutions-"), (path, rule_id)
        assert reason.strip() and "\n" not in reason and len(reason) <= 160, (path, rule_id)
    rules = {rule_id.split("[")[0] for _, rule_id, _ in acks}
    # Known, reviewed exceptions only; a new one needs a look (and a line here).
    assert rules <= {
        "AwsSolutions-S1",  # the access log bucket itself
        "AwsSolutions-SQS3",  # the dead-letter queue itself
        "AwsSolutions-IAM4",  # CDK's bucket-notification custom resource
        "AwsSolutions-IAM5",  # object ARNs under packages/ only
        "AwsSolutions-L1",  # python3.12 pinned together with the layer
        "AwsSolutions-APIG4",  # the app authenticates requests itself
        "AwsSolutions-SNS2",  # alarm topic: CloudWatch cannot use the AWS-managed key
        "AwsSolutions-SMG4",  # signing key and user database: not rotated, by design
    }


def test_cdk_nag_is_active(built_layer, tmp_path):
    """A deliberately non-compliant bucket fails the synth: the checks do run."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad")
    s3.Bucket(stack, "Open")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-S1" in report and "AwsSolutions-S10" in report


def test_cfn_lint_passes_on_every_template(default_synth, synth, tmp_path_factory):
    config = tmp_path_factory.mktemp("lint") / "stratus.ini"
    config.write_text("[stratus]\n")
    variants = [
        default_synth,
        synth(
            custom_domain="pypi.example.com",
            certificate_arn="arn:aws:acm:us-east-1:111111111111:certificate/abc",
            hosted_zone_id="Z123456ABCDEFG",
            hosted_zone_name="example.com",
            access_config_file=str(config),
            alarm_email="ops@example.com",
        ),
        synth(  # both secrets, a customer managed key, conditions on its use
            access_backend="aws_secrets_manager",
            access_secret_kms_key_arn=(
                "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
        ),
        non_default_variant(synth, tmp_path_factory),  # no SnapStart, linear, LDAP layer
    ]
    for variant in variants:
        templates = sorted(Path(variant["outdir"]).glob("*.template.json"))
        assert len(templates) == len(STACKS)
        result = run_cfn_lint(templates)
        assert result.returncode == 0, result.stdout + result.stderr
