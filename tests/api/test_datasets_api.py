"""``/api/v1/datasets``: uploads in every form, a malformed file's 400, export, split, dedupe."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from modelcycle.monitor.trace_schemas import FeedbackCreate, MonitorPolicyUpdate
from modelcycle.services import Services
from modelcycle.store.tables import DatasetRow, DatasetSampleRow
from modelcycle.testing import KeyPair, make_key
from modelcycle.types import Role
from monitor.trace_factory import NOW, llm_span

BASE = "/api/v1/datasets"
QA = (
    b'{"question": "What is 2+2?", "answer": "4"}\n'
    b'{"question": "Capital of France?", "answer": "Paris"}\n'
)
CSV = b"prompt,expected,topic\nOnce upon,a time,story\nRoses are,red,poem\n"


def stored(services: Services) -> tuple[int, int]:
    with services.store.read() as session:
        datasets = session.execute(select(func.count()).select_from(DatasetRow)).scalar_one()
        samples = session.execute(select(func.count()).select_from(DatasetSampleRow)).scalar_one()
    return int(datasets), int(samples)


async def test_upload_a_file_then_list_show_page_and_export_it(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    created = await modelcycle_api.post(
        f"{BASE}/qa/versions",
        content=QA,
        params={"filename": "qa.jsonl", "description": "smoke"},
        headers={"content-type": "application/octet-stream"},
    )
    second = await modelcycle_api.post(
        f"{BASE}/qa/versions", content=CSV, headers={"content-type": "text/csv"}
    )
    listed = await modelcycle_api.get(BASE)
    shown = await modelcycle_api.get(f"{BASE}/qa")
    page = await modelcycle_api.get(f"{BASE}/qa/versions/1/samples", params={"limit": 1})
    rest = await modelcycle_api.get(
        f"{BASE}/qa/versions/1/samples", params={"cursor": page.json()["next_cursor"]}
    )
    exported = await modelcycle_api.get(f"{BASE}/qa/versions/2/export", params={"format": "csv"})

    assert created.status_code == 201, created.text
    assert created.json()["ref"] == "qa@1"
    assert created.json()["meta"] == {"format": "jsonl", "bytes": len(QA), "file": "qa.jsonl"}
    assert second.json()["meta"]["format"] == "csv"
    assert [(d["name"], d["latest"]["version"]) for d in listed.json()["data"]] == [("qa", 2)]
    assert shown.json()["description"] == "smoke"
    assert [v["version"] for v in shown.json()["versions"]] == [2, 1]
    assert [s["expected"] for s in page.json()["data"]] == ["4"]
    assert [s["expected"] for s in rest.json()["data"]] == ["Paris"]
    assert rest.json()["next_cursor"] is None
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"] == 'attachment; filename="qa-2.csv"'
    assert exported.content == CSV


async def test_a_json_samples_body_and_an_explicit_chat_format(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    as_json = await modelcycle_api.post(
        f"{BASE}/mixed/versions",
        json={"samples": [{"input": "hi", "expected": "hello"}], "description": "via json"},
    )
    chat_line = {
        "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    }
    as_chat = await modelcycle_api.post(
        f"{BASE}/mixed/versions",
        content=json.dumps(chat_line).encode(),
        params={"format": "chat"},
        headers={"content-type": "application/json"},
    )
    samples = await modelcycle_api.get(f"{BASE}/mixed/versions/2/samples")

    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["meta"] == {"format": "json"}
    assert as_chat.status_code == 201, as_chat.text
    (sample,) = samples.json()["data"]
    assert sample["input"] == {"messages": [{"role": "user", "content": "2+2?"}]}
    assert sample["expected"] == "4"


async def test_a_malformed_file_is_a_400_naming_the_line_and_nothing_is_stored(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    bad_jsonl = QA + b'{"question": 3}\n'
    bad_csv = b"input,expected\nok,1\nnot,enough,cells,here\n"

    jsonl_error = await modelcycle_api.post(
        f"{BASE}/qa/versions", content=bad_jsonl, params={"format": "jsonl"}
    )
    csv_error = await modelcycle_api.post(
        f"{BASE}/qa/versions", content=bad_csv, headers={"content-type": "text/csv"}
    )
    json_error = await modelcycle_api.post(
        f"{BASE}/qa/versions", json={"samples": [{"input": "ok"}, {"input": ""}]}
    )
    not_samples = await modelcycle_api.post(f"{BASE}/qa/versions", json={"rows": []})

    for response in (jsonl_error, csv_error, json_error, not_samples):
        assert response.status_code == 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert jsonl_error.json()["error"]["message"].startswith(
        "line 3: 'question' must be a string or messages, got a number"
    )
    assert jsonl_error.json()["error"]["code"] == "malformed_dataset"
    assert csv_error.json()["error"]["message"].startswith("line 3: 4 cells, but the header has 2")
    assert json_error.json()["error"]["message"].startswith("samples[1]: 'input' is empty")
    assert "samples" in not_samples.json()["error"]["message"]
    assert stored(modelcycle_services) == (0, 0)


async def test_bad_parameters_are_400s_and_missing_datasets_404s(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    await modelcycle_api.post(f"{BASE}/qa/versions", content=QA)

    wrong_format = await modelcycle_api.post(
        f"{BASE}/qa/versions", content=QA, params={"format": "xml"}
    )
    wrong_export = await modelcycle_api.get(
        f"{BASE}/qa/versions/1/export", params={"format": "xml"}
    )
    bad_name = await modelcycle_api.post(f"{BASE}/-x/versions", content=QA)
    missing = await modelcycle_api.get(f"{BASE}/nope")
    no_version = await modelcycle_api.get(f"{BASE}/qa/versions/5/samples")
    bad_ratio = await modelcycle_api.post(f"{BASE}/qa/split", json={"ratios": {"a": 0.5, "b": 0.6}})
    conversation = await modelcycle_api.post(
        f"{BASE}/conv/versions",
        json={
            "samples": [
                {"input": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
            ]
        },
    )
    csv_of_conversation = await modelcycle_api.get(
        f"{BASE}/conv/versions/1/export", params={"format": "csv"}
    )

    assert wrong_format.status_code == 400
    assert wrong_export.status_code == 400
    assert bad_name.status_code == 400
    assert missing.status_code == 404
    assert "modelcycle datasets list" in missing.json()["error"]["message"]
    assert no_version.status_code == 404
    assert bad_ratio.status_code == 400
    assert "ratios add up to 1.1" in bad_ratio.json()["error"]["message"]
    assert conversation.status_code == 201
    assert csv_of_conversation.status_code == 400
    assert "export as JSONL" in csv_of_conversation.json()["error"]["message"]


async def test_split_and_dedupe_make_new_versions_with_lineage(
    modelcycle_api: httpx.AsyncClient,
) -> None:
    lines = [{"input": f"q{i % 8}", "n": i} for i in range(10)]  # q0 and q1 repeat
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    await modelcycle_api.post(f"{BASE}/pool/versions", content=body)

    deduped = await modelcycle_api.post(f"{BASE}/pool/dedupe", json={})
    split = await modelcycle_api.post(
        f"{BASE}/pool/split", json={"ratios": {"train": 0.75, "test": 0.25}, "seed": 3}
    )

    assert deduped.status_code == 200, deduped.text
    assert deduped.json()["removed"] == 2
    assert deduped.json()["version"]["ref"] == "pool@2"
    assert split.status_code == 201, split.text
    parts = split.json()
    assert [(p["ref"], p["sample_count"], p["parent"]) for p in parts] == [
        ("pool-train@1", 6, "pool@2"),
        ("pool-test@1", 2, "pool@2"),
    ]


async def test_from_traces_over_http_scrubs_and_keeps_lineage(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    admin = modelcycle_admin.principal
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=True))
    span = llm_span(
        admin.project_id, input='[{"role":"user","content":"call me at bob@example.org"}]'
    )
    modelcycle_services.recorder.writer.write([span])
    modelcycle_services.feedback.add(
        admin, span.trace_id, FeedbackCreate(thumbs=-1, correction="Sure, Bob.")
    )
    window: dict[str, Any] = {
        "start": (NOW - timedelta(hours=1)).isoformat(),
        "end": (NOW + timedelta(hours=1)).isoformat(),
    }

    made = await modelcycle_api.post(
        f"{BASE}/from-traces",
        json={"name": "fixes", "feedback": "negative", "with_correction": True, **window},
    )
    samples = await modelcycle_api.get(f"{BASE}/fixes/versions/1/samples")
    naive = await modelcycle_api.post(
        f"{BASE}/from-traces", json={"name": "x", "start": "2025-06-01T00:00:00"}
    )

    assert made.status_code == 201, made.text
    (sample,) = samples.json()["data"]
    assert sample["trace_id"] == span.trace_id
    assert sample["input"]["messages"][0]["content"] == "call me at [EMAIL_ADDRESS]"
    assert sample["expected"] == "Sure, Bob."
    assert naive.status_code == 400
    assert "time zone" in naive.json()["error"]["message"]


async def test_delete_a_dataset(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    await modelcycle_api.post(f"{BASE}/qa/versions", content=QA)
    viewer = make_key(modelcycle_services, Role.VIEWER)

    refused = await modelcycle_api.delete(
        f"{BASE}/qa", headers={"Authorization": f"Bearer {viewer.key}"}
    )
    deleted = await modelcycle_api.delete(f"{BASE}/qa")
    again = await modelcycle_api.delete(f"{BASE}/qa")

    assert refused.status_code == 403
    assert deleted.status_code == 204
    assert again.status_code == 404
    assert stored(modelcycle_services) == (0, 0)


async def test_an_upload_over_the_default_body_limit_is_accepted_up_to_the_file_limit(
    modelcycle_api: httpx.AsyncClient, modelcycle_services: Services
) -> None:
    big = b"".join(
        json.dumps({"input": f"question {i} " + "x" * 200}).encode() + b"\n" for i in range(8_000)
    )
    assert len(big) > modelcycle_services.settings.max_body_bytes

    created = await modelcycle_api.post(f"{BASE}/big/versions", content=big)

    assert created.status_code == 201, created.text
    assert created.json()["sample_count"] == 8_000
