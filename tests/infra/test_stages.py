"""One account, several stages: ``-c stage=staging`` names every stack, export and tag."""

from __future__ import annotations

import json

import pytest

from infra.settings import DeploySettings

from .conftest import STACKS


def test_stage_names_the_stacks_and_their_exports(synth):
    out = synth(stage="staging")
    names = set(out["stacks"])
    assert names == {f"StratusStaging{name}" for name in STACKS}
    storage = out["stacks"]["StratusStagingStorage"].template
    exports = [o.get("Export", {}).get("Name") for o in storage["Outputs"].values()]
    assert "StratusStagingStorage-PackagesBucketArn" in exports
    api = json.dumps(out["stacks"]["StratusStagingApi"].template)
    assert "StratusStagingStorage-PackagesBucketArn" in api
    assert "StratusStorage-PackagesBucketArn" not in api  # never another stage's bucket


@pytest.mark.parametrize("stage", ["Prod", "1st", "x" * 21, "a_b"])
def test_a_bad_stage_name_is_refused(stage):
    with pytest.raises(ValueError, match="stage"):
        DeploySettings(stage=stage).validate()


def test_stage_prefix_in_title_case():
    assert DeploySettings(stage="eu-prod").stack_names_prefix == "StratusEuProd"
    assert DeploySettings().stack_names_prefix == "Stratus"
