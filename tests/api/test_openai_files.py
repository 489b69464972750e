"""``/v1/files`` through the official ``openai`` SDK against a live server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy import func, select

from e2e.live import LiveServer
from modelcycle.services import Services
from modelcycle.store.tables import AuditEntryRow, FileRow
from modelcycle.testing import make_key, make_project
from modelcycle.tune import files as files_module
from modelcycle.types import Role

CHAT = [
    {
        "messages": [
            {"role": "system", "content": "You answer with a capital."},
            {"role": "user", "content": f"capital of {country}?"},
            {"role": "assistant", "content": capital},
        ]
    }
    for country, capital in [("france", "paris"), ("italy", "rome"), ("peru", "lima")]
]
PREFERENCE = {
    "input": {"messages": [{"role": "user", "content": "capital of peru?"}]},
    "preferred_output": [{"role": "assistant", "content": "lima"}],
    "non_preferred_output": [{"role": "assistant", "content": "cusco"}],
}


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def sdk(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20)


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with sdk(live_server, live_server.admin_key) as api:
        yield api


def stored(services: Services) -> tuple[int, list[str], int]:
    """(file rows, names in home/files, file.* audit entries)."""
    with services.store.read() as session:
        rows = session.execute(select(func.count()).select_from(FileRow)).scalar_one()
        audited = session.execute(
            select(func.count())
            .select_from(AuditEntryRow)
            .where(AuditEntryRow.action.like("file.%"))
        ).scalar_one()
    directory = services.settings.home / "files"
    names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    return int(rows), names, int(audited)


def test_upload_retrieve_list_download_and_delete(
    client: openai.OpenAI, modelcycle_services: Services, tmp_path: Path
) -> None:
    content = jsonl(CHAT)
    path = tmp_path / "capitals.jsonl"
    path.write_bytes(content)

    with path.open("rb") as handle:
        created = client.files.create(file=handle, purpose="fine-tune")

    assert created.id.startswith("file-")
    assert len(created.id) == 29
    assert (created.object, created.bytes, created.filename) == ("file", len(content), path.name)
    assert (created.purpose, created.status) == ("fine-tune", "processed")
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == content
    # The bytes are kept as uploaded, under the home, with their checksum on the row.
    on_disk = modelcycle_services.settings.home / "files" / created.id
    assert on_disk.read_bytes() == content
    info = modelcycle_services.files.get(
        modelcycle_services.access.authenticate(client.api_key), created.id
    )
    assert (info.sha256, info.lines) == (hashlib.sha256(content).hexdigest(), 3)

    listed = client.files.list(purpose="fine-tune")
    assert [f.id for f in listed.data] == [created.id]
    assert client.files.list(purpose="assistants").data == []

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "file")
    assert not on_disk.exists()
    with pytest.raises(openai.NotFoundError, match=created.id):
        client.files.retrieve(created.id)
    rows, names, audited = stored(modelcycle_services)
    assert (rows, names, audited) == (0, [], 2)  # file.upload and file.delete


def test_a_preference_file_is_accepted_for_dpo(client: openai.OpenAI) -> None:
    created = client.files.create(
        file=("pairs.jsonl", jsonl([PREFERENCE] * 2)), purpose="fine-tune"
    )
    assert created.bytes == len(jsonl([PREFERENCE] * 2))
    assert created.filename == "pairs.jsonl"


BAD_LINE = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "capital of spain?"},
    ]
}


@pytest.mark.parametrize(
    ("content", "purpose", "expected"),
    [
        (
            jsonl([*CHAT[:2], BAD_LINE]),
            "fine-tune",
            r"line 3: the last message must be the assistant",
        ),
        (jsonl(CHAT[:1]) + b"{not json\n", "fine-tune", r"line 2: not valid JSON"),
        (jsonl([CHAT[0], PREFERENCE]), "fine-tune", r"line 2: a preference example, but line 1"),
        (
            jsonl([{"messages": [{"role": "robot", "content": "x"}, CHAT[0]["messages"][2]]}]),
            "fine-tune",
            r"line 1: message 0 needs a role",
        ),
        (jsonl([[1, 2]]), "fine-tune", r"line 1: expected a JSON object"),  # type: ignore[list-item]
        (b"\n\n", "fine-tune", r"no examples"),
        (b"\xff\xfe{}", "fine-tune", r"not UTF-8"),
        (jsonl(CHAT), "assistants", r"purpose 'assistants' is not supported"),
    ],
    ids=[
        "no-answer",
        "bad-json",
        "mixed-kinds",
        "bad-role",
        "not-object",
        "empty",
        "binary",
        "purpose",
    ],
)
def test_a_bad_file_is_a_400_naming_the_line_and_nothing_is_stored(
    client: openai.OpenAI,
    modelcycle_services: Services,
    content: bytes,
    purpose: str,
    expected: str,
) -> None:
    with pytest.raises(openai.BadRequestError, match=expected) as caught:
        client.files.create(file=("train.jsonl", content), purpose=purpose)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert stored(modelcycle_services) == (0, [], 0)


def test_a_file_over_the_size_limit_is_refused_naming_it(
    client: openai.OpenAI, modelcycle_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "MAX_FILE_BYTES", 200)
    with pytest.raises(openai.APIStatusError, match=r"at most 200 bytes") as caught:
        client.files.create(file=("big.jsonl", jsonl(CHAT * 2)), purpose="fine-tune")
    assert caught.value.status_code == 413
    assert stored(modelcycle_services) == (0, [], 0)


def test_pages_follow_after_newest_first(client: openai.OpenAI) -> None:
    ids = [
        client.files.create(file=(f"f{n}.jsonl", jsonl(CHAT[n : n + 1])), purpose="fine-tune").id
        for n in range(3)
    ]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2]
    assert first.has_more
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]  # the SDK follows `after`
    assert [f.id for f in client.files.list(order="asc", after=ids[0])] == ids[1:]


def test_another_projects_file_is_a_404_like_a_missing_one(
    live_server: LiveServer, client: openai.OpenAI
) -> None:
    theirs = client.files.create(file=("t.jsonl", jsonl(CHAT)), purpose="fine-tune").id
    other = make_key(live_server.services, Role.ADMIN, make_project(live_server.services, "team-x"))
    missing = "file-" + "0" * 24
    with sdk(live_server, other.key) as outsider:
        errors = []
        for file_id in (theirs, missing):
            with pytest.raises(openai.NotFoundError) as caught:
                outsider.files.retrieve(file_id)
            body = caught.value.body
            assert isinstance(body, dict)
            errors.append({**body, "message": str(body["message"]).replace(file_id, "ID")})
            with pytest.raises(openai.NotFoundError):
                outsider.files.content(file_id)
            with pytest.raises(openai.NotFoundError):
                outsider.files.delete(file_id)
        assert errors[0] == errors[1]
        assert errors[0]["type"] == "invalid_request_error"
        assert outsider.files.list().data == []


def test_viewers_read_and_only_maintainers_upload_or_delete(
    live_server: LiveServer, client: openai.OpenAI
) -> None:
    file_id = client.files.create(file=("t.jsonl", jsonl(CHAT)), purpose="fine-tune").id
    viewer = make_key(live_server.services, Role.VIEWER)
    maintainer = make_key(live_server.services, Role.MAINTAINER)
    with sdk(live_server, viewer.key) as reader:
        assert reader.files.retrieve(file_id).id == file_id
        assert reader.files.content(file_id).read() == jsonl(CHAT)
        with pytest.raises(openai.PermissionDeniedError):
            reader.files.create(file=("t.jsonl", jsonl(CHAT)), purpose="fine-tune")
        with pytest.raises(openai.PermissionDeniedError):
            reader.files.delete(file_id)
    with sdk(live_server, maintainer.key) as writer:
        assert writer.files.delete(file_id).deleted
