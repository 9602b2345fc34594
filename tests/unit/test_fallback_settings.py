"""The fallback settings: pypicloud's names from INI files and STRATUS_<NAME> variables."""

from __future__ import annotations

import logging

import pytest

from stratus.settings import Settings
from stratus.wiring import services_from_env, services_local


def test_defaults_keep_a_pypicloud_config_as_before():
    s = Settings.from_mapping({})
    assert s.fallback == "none"
    assert not s.always_show_upstream
    assert s.fallback_base_url == "https://pypi.org"
    assert s.cache_update == ("authenticated",)
    assert (s.upstream_cache_seconds, s.upstream_timeout) == (600, 10)
    assert s.private_projects == ()
    assert not s.origin_lock


def test_from_an_ini_file(tmp_path):
    config = tmp_path / "server.ini"
    config.write_text(
        "[app:main]\npypi.fallback = cache\npypi.always_show_upstream = true\n"
        "pypi.fallback_base_url = http://127.0.0.1:9000/\npypi.cache_update = admin ci\n"
        "pypi.upstream_cache_seconds = 30\npypi.upstream_timeout = 2\n"
        "pypi.private_projects = Acme-* internal-tools\npypi.origin_lock = true\n"
    )
    services = services_local(tmp_path / "data", config)
    s = services.settings
    assert s.fallback == "cache" and s.always_show_upstream and s.origin_lock
    assert s.fallback_base_url == "http://127.0.0.1:9000"
    assert s.cache_update == ("admin", "ci")
    assert (s.upstream_cache_seconds, s.upstream_timeout) == (30, 2)
    assert s.private_projects == ("acme-*", "internal-tools")
    assert services.fallback is not None and services.fallback.filler is not None


def test_from_the_environment():
    services = services_from_env(
        {
            "STRATUS_TABLE_NAME": "t",
            "STRATUS_BUCKET_NAME": "b",
            "STRATUS_FALLBACK": "redirect",
            "STRATUS_FALLBACK_BASE_URL": "https://mirror.example",
            "STRATUS_PRIVATE_PROJECTS": "acme-*,corp-*",
            "STRATUS_ORIGIN_LOCK": "1",
        }
    )
    s = services.settings
    assert s.fallback == "redirect"
    assert s.fallback_base_url == "https://mirror.example"
    assert s.private_projects == ("acme-*", "corp-*")
    assert s.origin_lock


def test_deprecated_fallback_url_still_works_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="stratus.settings"):
        s = Settings.from_mapping({"fallback_url": "https://pypi.python.org/simple"})
    assert s.fallback_base_url == "https://pypi.python.org"
    assert "deprecated" in caplog.text


@pytest.mark.parametrize(
    "values",
    [
        {"fallback": "mirror"},
        {"fallback_base_url": "file:///etc"},
        {"upstream_timeout": "0"},
        {"upstream_cache_seconds": "-1"},
    ],
)
def test_bad_values_are_refused(values):
    with pytest.raises(ValueError):
        Settings.from_mapping(values)
