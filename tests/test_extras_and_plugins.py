import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelcycle import events
from modelcycle.errors import InvalidInput, MissingExtra
from modelcycle.hookspecs import hookimpl
from modelcycle.plugins import EventBus, build_plugin_manager
from modelcycle.store import Store


def test_postgres_without_its_extra_fails_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtra) as caught:
        Store("postgresql+psycopg://user@127.0.0.1/db")
    assert (
        caught.value.message == "psycopg is not installed; run: pip install 'modelcycle[postgres]'"
    )


def test_invalid_database_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="invalid database URL"):
        Store("not a url at all")


class _Exploding:
    @hookimpl
    def modelcycle_alias_moved(self, event: events.AliasMoved) -> None:
        raise RuntimeError("plugin bug")


class _Recording:
    def __init__(self) -> None:
        self.seen: list[events.AliasMoved] = []

    @hookimpl
    def modelcycle_alias_moved(self, event: events.AliasMoved) -> None:
        self.seen.append(event)


def test_a_failing_plugin_is_logged_and_never_breaks_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recording = _Recording()
    bus = EventBus(build_plugin_manager([recording, _Exploding()], load_entry_points=False))
    event = events.AliasMoved(
        project="default",
        model="m",
        alias="production",
        from_version=1,
        to_version=2,
        actor="key:abc",
        at=datetime.now(UTC),
    )
    with caplog.at_level(logging.ERROR):
        bus.emit(event)
    assert "modelcycle_alias_moved failed" in caplog.text
    assert recording.seen == [event]  # the other plugin still got it
