from pathlib import Path

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.settings import load_settings


def test_environment_overrides_yaml_and_arguments_override_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "modelcycle.yaml"
    config.write_text("port: 9001\nlog_level: warning\nmax_body_bytes: 4096\n")
    monkeypatch.setenv("MODELCYCLE_PORT", "9002")
    settings = load_settings(config, home=tmp_path)
    assert settings.port == 9002  # env beats file
    assert settings.log_level == "warning"  # file beats default
    assert settings.max_body_bytes == 4096
    assert load_settings(config, home=tmp_path, port=9003).port == 9003


def test_default_database_is_sqlite_under_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'modelcycle.db'}"


def test_unknown_setting_in_yaml_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("prot: 8000\n")
    with pytest.raises(InvalidInput, match="prot"):
        load_settings(config)


def test_unreadable_or_malformed_config_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [unclosed\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_settings(bad)


def test_admin_key_is_secret_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "mc_abcdefgh_" + "A" * 32
    monkeypatch.setenv("MODELCYCLE_ADMIN_KEY", secret)
    settings = load_settings(home=tmp_path)
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == secret
    assert secret not in repr(settings)
