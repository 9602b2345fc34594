"""CloudFront (context ``cloudfront``) and what upload sessions need from the stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .test_nag_and_lint import acknowledgments, run_cfn_lint
from .test_templates import BUCKET, STAGED, objects, only, resources, statements

CERTIFICATE = "arn:aws:acm:us-east-1:111111111111:certificate/cf"


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.support.cloudfront import make_key_pair

    folder = tmp_path_factory.mktemp("cloudfront-keys")
    pairs = {"k2026a": make_key_pair(), "k2026b": make_key_pair()}
    paths = {}
    for name, pair in pairs.items():
        path = folder / f"{name}.pem"
        path.write_bytes(pair.public_pem)
        paths[name] = str(path)
    return {"pairs": pairs, "paths": paths, "folder": folder}


@pytest.fixture(scope="module")
def cdn(synth, key_files) -> dict[str, Any]:
    """One key, default domain."""
    return synth(cloudfront=True, cloudfront_public_keys={"k2026a": key_files["paths"]["k2026a"]})


@pytest.fixture(scope="module")
def rotating(synth, key_files) -> dict[str, Any]:
    """Two keys (a rotation), signing with the new one, custom domain, another price class."""
    return synth(
        cloudfront=True,
        cloudfront_public_keys=key_files["paths"],
        cloudfront_signing_key="k2026b",
        cloudfront_domain="files.pypi.example.com",
        cloudfront_certificate_arn=CERTIFICATE,
        cloudfront_price_class="PriceClass_All",
        cloudfront_key_secret_prefix="corp/pypi/",
    )


def template(out: dict[str, Any], stack: str) -> dict[str, Any]:
    return out["stacks"][f"Stratus{stack}"].template


def by_prefix(tpl: dict[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    found = [v for k, v in resources(tpl, kind).items() if k.startswith(prefix)]
    assert len(found) == 1, (kind, prefix, found)
    return found[0]


# --- upload sessions (default settings) ----------------------------------------------------


def test_staged_uploads_expire_and_abandoned_multipart_uploads_are_aborted(templates):
    bucket = by_prefix(templates["Storage"], "AWS::S3::Bucket", "Packages")["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-upload-sessions"] == {
        "Id": "expire-upload-sessions",
        "Prefix": "uploads/",
        "ExpirationInDays": 2,
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "Status": "Enabled",
    }


def test_pending_in_place_uploads_expire_a_day_after_their_session(templates):
    bucket = by_prefix(templates["Storage"], "AWS::S3::Bucket", "Packages")["Properties"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-pending-uploads"] == {
        "Id": "expire-pending-uploads",
        "Prefix": "packages/",
        "TagFilters": [{"Key": "stratus-upload", "Value": "pending"}],
        "ExpirationInDays": 2,  # sessions live a day (upload_session_ttl), then a day more
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        "Status": "Enabled",
    }


@pytest.mark.parametrize(("ttl", "days"), [("3600", 2), ("86400", 2), ("86401", 3)])
def test_the_pending_upload_rule_follows_the_session_ttl(ttl, days):
    from infra.uploads import pending_upload_days

    assert pending_upload_days({"upload_session_ttl": ttl, "realm": "x"}) == days
    assert pending_upload_days({}) == 2


def test_the_index_table_expires_short_lived_items(templates):
    from stratus.adapters.table_schema import TTL_ATTRIBUTE

    table = only(templates["Storage"], "AWS::DynamoDB::Table")["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_the_api_may_stage_uploads_and_copy_them_into_packages(templates):
    got = statements(templates["Api"], "ApiRole")
    assert got["StageUploads"] == {
        "actions": [
            "s3:AbortMultipartUpload",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListMultipartUploadParts",
            "s3:PutObject",
        ],
        "resource": STAGED,
    }
    assert got["AbortPackageCopies"] == {
        "actions": ["s3:AbortMultipartUpload"],
        "resource": objects("*"),
    }
    # In-place sessions: presign a tagged PUT, read the pending tag, remove it.
    assert got["TagInPlaceUploads"] == {
        "actions": ["s3:DeleteObjectTagging", "s3:GetObjectTagging", "s3:PutObjectTagging"],
        "resource": objects("*"),
    }
    assert "ReadCloudFrontSigningKey" not in got  # no CloudFront by default


def test_api_limits_legacy_uploads_to_what_lambda_takes(templates):
    env = only(templates["Api"], "AWS::Lambda::Function")["Properties"]["Environment"]
    variables = env["Variables"]
    assert int(variables["STRATUS_MAX_UPLOAD_BYTES"]) * 4 / 3 < 6 * 1024 * 1024 - 100_000
    assert variables["STRATUS_UPLOAD_COMPLETION_LEASE"] == "34"  # the 29 s timeout, and some
    assert not any(k.startswith("STRATUS_STORAGE_") for k in variables)


def test_no_cloudfront_by_default(templates):
    kinds = {r["Type"] for r in templates["Storage"]["Resources"].values()}
    assert not any(kind.startswith("AWS::CloudFront") for kind in kinds)


# --- CloudFront ----------------------------------------------------------------------------


def test_distribution_serves_the_bucket_over_https_with_signed_urls_only(cdn):
    storage = template(cdn, "Storage")
    config = only(storage, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    group_id = next(iter(resources(storage, "AWS::CloudFront::KeyGroup")))
    assert behavior["TrustedKeyGroups"] == [{"Ref": group_id}]
    assert config["PriceClass"] == "PriceClass_100"
    assert config["HttpVersion"] == "http2and3"
    assert "Aliases" not in config
    (origin,) = config["Origins"]
    bucket_id = next(k for k in resources(storage, "AWS::S3::Bucket") if k.startswith("Packages"))
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
    oac_id = next(iter(resources(storage, "AWS::CloudFront::OriginAccessControl")))
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    oac = only(storage, "AWS::CloudFront::OriginAccessControl")["Properties"]
    assert oac["OriginAccessControlConfig"] | {"Name": None, "Description": None} == {
        "Name": None,
        "Description": None,
        "OriginAccessControlOriginType": "s3",
        "SigningBehavior": "always",
        "SigningProtocol": "sigv4",
    }
    # Access logs, to a bucket of their own that accepts CloudFront's log delivery.
    logs_id = next(k for k in resources(storage, "AWS::S3::Bucket") if k.startswith("CdnLogs"))
    assert config["Logging"]["Bucket"] == {"Fn::GetAtt": [logs_id, "RegionalDomainName"]}
    logs = resources(storage, "AWS::S3::Bucket")[logs_id]["Properties"]
    assert logs["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    assert all(logs["PublicAccessBlockConfiguration"].values())


def test_bucket_stays_private_and_only_this_distribution_reads_packages(cdn):
    storage = template(cdn, "Storage")
    bucket_id = next(k for k in resources(storage, "AWS::S3::Bucket") if k.startswith("Packages"))
    bucket = resources(storage, "AWS::S3::Bucket")[bucket_id]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policy = by_prefix(storage, "AWS::S3::BucketPolicy", "PackagesPolicy")["Properties"]
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    distribution_id = next(iter(resources(storage, "AWS::CloudFront::Distribution")))
    assert allows == [
        {
            "Sid": "CloudFrontReadsPackageFiles",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/packages/*"]]},
            "Condition": {
                "StringEquals": {
                    "AWS:SourceArn": {
                        "Fn::Join": [
                            "",
                            [
                                "arn:",
                                {"Ref": "AWS::Partition"},
                                ":cloudfront::",
                                {"Ref": "AWS::AccountId"},
                                ":distribution/",
                                {"Ref": distribution_id},
                            ],
                        ]
                    }
                }
            },
        }
    ]


def test_key_group_holds_the_public_keys_and_no_private_key_is_anywhere(rotating, key_files):
    storage = template(rotating, "Storage")
    keys = resources(storage, "AWS::CloudFront::PublicKey")
    encoded = {v["Properties"]["PublicKeyConfig"]["EncodedKey"] for v in keys.values()}
    assert encoded == {pair.public_pem.decode() for pair in key_files["pairs"].values()}
    group = only(storage, "AWS::CloudFront::KeyGroup")["Properties"]["KeyGroupConfig"]
    assert sorted(item["Ref"] for item in group["Items"]) == sorted(keys)
    for name in ("Storage", "Api", "Sync", "Reconcile", "Monitoring"):
        text = json.dumps(template(rotating, name))
        assert "PRIVATE KEY" not in text, name
        for pair in key_files["pairs"].values():
            body = b"".join(pair.private_pem.splitlines()[1:-1]).decode()
            assert body[:64] not in text and body[-64:] not in text, name
    assets = [p for p in Path(rotating["outdir"]).rglob("*") if p.is_file()]
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in assets if p.suffix == ".json")


def test_custom_domain_certificate_and_price_class(rotating):
    storage = template(rotating, "Storage")
    config = only(storage, "AWS::CloudFront::Distribution")["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["files.pypi.example.com"]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CERTIFICATE,
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "SslSupportMethod": "sni-only",
    }
    assert config["PriceClass"] == "PriceClass_All"


def test_api_signs_with_the_chosen_key_read_from_its_secret(rotating):
    api = template(rotating, "Api")
    env = only(api, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["STRATUS_STORAGE_CLOUD_FRONT_DOMAIN"] == "files.pypi.example.com"
    key_ref = env["STRATUS_STORAGE_CLOUD_FRONT_KEY_ID"]["Fn::GetStackOutput"]
    assert key_ref["StackName"] == "StratusStorage"
    assert "CdnKeyk2026b" in key_ref["OutputName"]  # the signing key, not the old one
    assert env["STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET"] == "corp/pypi/k2026b"  # a name only
    got = statements(api, "ApiRole")
    assert got["ReadCloudFrontSigningKey"] == {
        "actions": ["secretsmanager:GetSecretValue"],
        "resource": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":secretsmanager:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    ":secret:corp/pypi/k2026b-??????",
                ],
            ]
        },
    }


def test_default_domain_is_the_distributions(cdn):
    env = only(template(cdn, "Api"), "AWS::Lambda::Function")["Properties"]["Environment"]
    domain = env["Variables"]["STRATUS_STORAGE_CLOUD_FRONT_DOMAIN"]["Fn::GetStackOutput"]
    assert "CdnDistribution" in domain["OutputName"] and "DomainName" in domain["OutputName"]
    assert env["Variables"]["STRATUS_STORAGE_CLOUD_FRONT_KEY_SECRET"] == "stratus/cloudfront/k2026a"


@pytest.mark.parametrize("variant", ["cdn", "rotating"])
def test_cloudfront_variants_pass_cdk_nag_and_cfn_lint(request, variant):
    out = request.getfixturevalue(variant)
    report = json.loads(Path(out["outdir"], "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []
    rules = {rule.split("[")[0] for _, rule, _ in acknowledgments(out["app"])}
    assert rules - {
        "AwsSolutions-S1",
        "AwsSolutions-SQS3",
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
        "AwsSolutions-APIG4",
        "AwsSolutions-SNS2",
        "AwsSolutions-SMG4",
    } <= {"AwsSolutions-CFR1", "AwsSolutions-CFR2", "AwsSolutions-CFR4"}
    if variant == "rotating":  # with a custom domain, TLS 1.2 holds: nothing to acknowledge
        assert "AwsSolutions-CFR4" not in rules
    templates = sorted(Path(out["outdir"]).glob("*.template.json"))
    result = run_cfn_lint(templates)
    assert result.returncode == 0, result.stdout + result.stderr


# --- settings ------------------------------------------------------------------------------


def refused(context: dict[str, Any], message: str) -> None:
    import aws_cdk as cdk

    from infra.settings import DeploySettings

    with pytest.raises(ValueError, match=message):
        DeploySettings.from_node(cdk.App(context=context).node)


def test_incoherent_cloudfront_settings_are_refused(key_files):
    paths = key_files["paths"]
    refused({"cloudfront": True}, "cloudfront_public_keys")
    refused({"cloudfront": True, "cloudfront_public_keys": paths}, "name the key the API signs")
    refused(
        {"cloudfront": True, "cloudfront_public_keys": paths, "cloudfront_signing_key": "k9"},
        "must name one of",
    )
    refused({"cloudfront_domain": "files.example.com"}, "go together")
    refused(
        {
            "cloudfront_domain": "files.example.com",
            "cloudfront_certificate_arn": "arn:aws:acm:eu-west-1:111111111111:certificate/x",
        },
        "us-east-1",
    )
    refused({"cloudfront_price_class": "PriceClass_50"}, "cloudfront_price_class")
    refused({"cloudfront_public_keys": {"bad name": "x.pem"}}, "not a key name")
    refused({"options": {"storage_cloud_front_key_string": "x"}}, "set by the stacks")


def test_a_private_key_file_is_refused(synth, key_files, tmp_path):
    from infra.cdn import read_public_key

    private = tmp_path / "oops.pem"
    private.write_bytes(key_files["pairs"]["k2026a"].private_pem)
    with pytest.raises(ValueError, match="holds a private key"):
        read_public_key(str(private))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValueError, match="not a PEM public key"):
        read_public_key(str(tmp_path / "junk.pem"))
    with pytest.raises(FileNotFoundError):
        read_public_key(str(tmp_path / "missing.pem"))
    assert read_public_key(key_files["paths"]["k2026a"]).startswith("-----BEGIN PUBLIC KEY")


def test_bucket_arn_constant_is_the_import(templates):
    assert BUCKET == {"Fn::ImportValue": "StratusStorage-PackagesBucketArn"}


# --- background completion of large uploads ---------------------------------------------------


def test_large_uploads_complete_in_a_function_fed_by_a_queue(templates):
    uploads = templates["Uploads"]
    queues = resources(uploads, "AWS::SQS::Queue")
    work = next(k for k in queues if k.startswith("Completions"))
    failures = next(k for k in queues if k.startswith("CompletionFailures"))
    props = queues[work]["Properties"]
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [failures, "Arn"]},
        "maxReceiveCount": 3,
    }
    assert props["VisibilityTimeout"] == 6 * 900  # >= the function's timeout, and its lease
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    mapping = only(uploads, "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert work in json.dumps(mapping["EventSourceArn"])
    env = only(uploads, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["STRATUS_UPLOAD_ASYNC_COMPLETION_LEASE"] == "960"
    assert env["STRATUS_ALLOW_OVERWRITE"] == "false"  # the API's publishing rules
    # none of the API's credentials, secrets or signing keys
    assert not any(k.startswith(("STRATUS_AUTH", "STRATUS_OIDC_", "STRATUS_STORAGE_")) for k in env)
    alarms = resources(templates["Monitoring"], "AWS::CloudWatch::Alarm")
    assert any(k.startswith("UploadCompletionFailures") for k in alarms)
    assert any(k.startswith("UploadCompletionErrors") for k in alarms)


def test_the_completion_function_has_least_privilege(templates):
    got = statements(templates["Uploads"], "CompletionRole")
    consume = got.pop("ConsumeEvents")  # CDK's statement for the event source
    assert "Completions" in json.dumps(consume["resource"])
    assert got.pop("WriteOwnLogs")["actions"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    traces = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert got.pop("WriteTraces")["actions"] == traces
    api = statements(templates["Api"], "ApiRole")
    assert got == {
        "StageUploads": api["StageUploads"],  # as the API's: only under uploads/
        # reads an in-place session's object to check it, then removes its pending tag;
        # never tags (PutObjectTagging) anything
        "PublishPackageFiles": {
            "actions": [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:DeleteObjectTagging",
                "s3:GetObject",
                "s3:GetObjectTagging",
                "s3:PutObject",
            ],
            "resource": objects("*"),
        },
        "ListPackageFiles": {"actions": ["s3:ListBucket"], "resource": BUCKET},
        "ReadWriteIndex": {
            "actions": [
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
            ],
            "resource": got["ReadWriteIndex"]["resource"],
        },
    }


def test_the_api_queues_large_completions(templates):
    api = statements(templates["Api"], "ApiRole")
    assert api["QueueUploadCompletions"]["actions"] == ["sqs:SendMessage"]
    assert "Completions" in json.dumps(api["QueueUploadCompletions"]["resource"])
    env = only(templates["Api"], "AWS::Lambda::Function")["Properties"]["Environment"]
    variables = env["Variables"]
    assert "STRATUS_UPLOAD_COMPLETION_QUEUE_URL" in variables
    assert variables["STRATUS_UPLOAD_ASYNC_COMPLETION_LEASE"] == "960"  # as the worker's
