import logging
from types import SimpleNamespace

from churn_kfp.registry.champion import version_threshold
from churn_kfp.registry.contract import DEFAULT_THRESHOLD


def _version(tags):
    return SimpleNamespace(name="m", version="4", tags=tags)


def test_version_threshold_reads_the_tag():
    assert version_threshold(_version({"threshold": "0.37"})) == 0.37


def test_version_threshold_defaults_without_a_tag(caplog):
    with caplog.at_level(logging.WARNING):
        assert version_threshold(_version({})) == DEFAULT_THRESHOLD
        assert version_threshold(_version(None)) == DEFAULT_THRESHOLD
    assert not caplog.records


def test_a_bad_threshold_tag_falls_back_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert version_threshold(_version({"threshold": "high"})) == DEFAULT_THRESHOLD
    assert "bad threshold tag 'high'" in caplog.text
