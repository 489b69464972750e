"""The datasets service on SQLite and PostgreSQL: versions, hashes, split, dedupe, traces."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from modelcycle.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from modelcycle.evaluate.datasets import DedupeIn, FromTracesIn, SamplesIn, SplitIn
from modelcycle.monitor.trace_schemas import FeedbackCreate, MonitorPolicyUpdate
from modelcycle.services import Services
from modelcycle.store.tables import (
    AuditEntryRow,
    DatasetRow,
    DatasetSampleRow,
    DatasetVersionRow,
    EvalRunRow,
)
from modelcycle.testing import KeyPair, make_key, make_project
from modelcycle.types import Role
from monitor.trace_factory import NOW, llm_span


def jsonl(*records: object) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


QA = jsonl(
    {"question": "What is 2+2?", "answer": "4", "topic": "math"},
    {"question": "Capital of France?", "answer": "Paris", "topic": "geo"},
    {"question": "Largest planet?", "answer": "Jupiter", "topic": "space"},
)


def rows(services: Services, table: Any) -> int:
    with services.store.read() as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def audit_actions(services: Services) -> list[str]:
    with services.store.read() as session:
        return list(
            session.execute(select(AuditEntryRow.action).order_by(AuditEntryRow.seq)).scalars()
        )


def test_an_import_is_version_1_with_its_samples_hash_and_audit(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal

    made = datasets.import_file(admin, "qa", QA, filename="qa.jsonl", description="smoke set")
    page = datasets.samples(admin, "qa@1")

    assert (made.ref, made.version, made.sample_count, made.source) == ("qa@1", 1, 3, "import")
    assert made.meta == {"format": "jsonl", "bytes": len(QA), "file": "qa.jsonl"}
    assert len(made.content_hash) == 64
    assert [s.expected for s in page.items] == ["4", "Paris", "Jupiter"]
    assert page.items[0].input == {"messages": [{"role": "user", "content": "What is 2+2?"}]}
    assert page.items[1].metadata == {"topic": "geo"}
    assert datasets.show(admin, "qa").description == "smoke set"
    assert audit_actions(modelcycle_services)[-1] == "dataset.import"


def test_equal_content_has_an_equal_hash_and_every_import_is_a_new_immutable_version(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    as_csv = b"question,answer,topic\nWhat is 2+2?,4,math\nCapital of France?,Paris,geo\n"
    as_csv += b"Largest planet?,Jupiter,space\n"

    first = datasets.import_file(admin, "qa", QA)
    same_as_csv = datasets.import_file(admin, "qa", as_csv, format="csv")
    changed = datasets.import_file(admin, "qa", QA.replace(b"Jupiter", b"Saturn"))
    elsewhere = datasets.import_file(admin, "copy", QA)

    assert [first.version, same_as_csv.version, changed.version] == [1, 2, 3]
    assert first.content_hash == same_as_csv.content_hash == elsewhere.content_hash
    assert changed.content_hash != first.content_hash
    # Version 1 still holds exactly what was imported into it.
    assert [s.expected for s in datasets.samples(admin, "qa@1").items] == ["4", "Paris", "Jupiter"]
    assert datasets.samples(admin, "qa").items[2].expected == "Saturn"
    shown = datasets.show(admin, "qa")
    assert [v.version for v in shown.versions or []] == [3, 2, 1]
    assert shown.latest is not None
    assert shown.latest.version == 3
    assert shown.version_count == 3


def test_a_malformed_file_imports_nothing_and_names_the_line(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    audit_before = len(audit_actions(modelcycle_services))
    bad_json = QA + b'{"question": "unfinished\n'
    bad_csv = b'input,expected\nok,1\nalso ok,2\n"broken,3\n'

    with pytest.raises(InvalidInput, match=r"^line 4: not valid JSON"):
        datasets.import_file(modelcycle_admin.principal, "qa", bad_json)
    with pytest.raises(InvalidInput, match=r"^line 4: not valid CSV"):
        datasets.import_file(modelcycle_admin.principal, "qa", bad_csv)
    with pytest.raises(InvalidInput, match=r"^samples\[1\]: missing input"):
        datasets.import_samples(
            modelcycle_admin.principal, "qa", SamplesIn(samples=[{"input": "x"}, {"answer": "y"}])
        )

    for table in (DatasetRow, DatasetVersionRow, DatasetSampleRow):
        assert rows(modelcycle_services, table) == 0
    assert len(audit_actions(modelcycle_services)) == audit_before


def test_viewers_read_maintainers_write_and_other_projects_see_nothing(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    datasets.import_file(modelcycle_admin.principal, "qa", QA)
    viewer = make_key(modelcycle_services, Role.VIEWER).principal
    outsider = make_key(
        modelcycle_services, Role.ADMIN, make_project(modelcycle_services)
    ).principal

    assert datasets.show(viewer, "qa").latest is not None
    assert datasets.export(viewer, "qa").count(b"\n") == 3
    with pytest.raises(PermissionDenied):
        datasets.import_file(viewer, "qa", QA)
    with pytest.raises(PermissionDenied):
        datasets.dedupe(viewer, "qa", DedupeIn())
    with pytest.raises(NotFound, match="dataset 'qa' not found"):
        datasets.show(outsider, "qa")
    with pytest.raises(NotFound):
        datasets.samples(outsider, "qa@1")
    assert datasets.list(outsider).items == []


def test_bad_names_and_references_are_400s(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    datasets.import_file(modelcycle_admin.principal, "qa", QA)

    with pytest.raises(InvalidInput, match="dataset name '-bad' must be"):
        datasets.import_file(modelcycle_admin.principal, "-bad", QA)
    with pytest.raises(InvalidInput, match=r"write NAME .* or NAME@VERSION"):
        datasets.samples(modelcycle_admin.principal, "qa@latest")
    with pytest.raises(NotFound, match="dataset 'qa' has no version 9"):
        datasets.export(modelcycle_admin.principal, "qa@9")


def test_samples_are_paged_in_order_with_a_cursor(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    datasets.import_file(admin, "many", jsonl(*({"input": f"q{i}"} for i in range(7))))

    seen, cursor = [], None
    while True:
        page = datasets.samples(admin, "many", cursor=cursor, limit=3)
        seen.extend(s.position for s in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == list(range(7))


def test_export_then_import_gives_the_same_content_hash(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    original = datasets.import_file(admin, "qa", QA)

    as_jsonl = datasets.export(admin, "qa@1", "jsonl")
    as_csv = datasets.export(admin, "qa@1", "csv")
    from_jsonl = datasets.import_file(admin, "qa-copy", as_jsonl)
    from_csv = datasets.import_file(admin, "qa-csv", as_csv, format="csv")

    assert from_jsonl.content_hash == original.content_hash
    assert from_csv.content_hash == original.content_hash
    assert as_csv.decode().splitlines()[0] == "input,expected,topic"


def labelled(n: int) -> bytes:
    return jsonl(*({"input": f"question {i}", "label": "a" if i % 4 else "b"} for i in range(n)))


def test_split_is_disjoint_covering_deterministic_and_keeps_lineage(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    datasets.import_file(admin, "pool", labelled(40))

    def contents(ref: str) -> list[str]:
        return [s.content_hash for s in datasets.samples(admin, ref, limit=500).items]

    train, test = datasets.split(admin, "pool", SplitIn(ratios={"train": 0.8, "test": 0.2}, seed=7))
    again = datasets.split(admin, "pool", SplitIn(ratios={"train": 0.8, "test": 0.2}, seed=7))
    other = datasets.split(admin, "pool", SplitIn(ratios={"train": 0.8, "test": 0.2}, seed=8))

    assert (train.ref, test.ref) == ("pool-train@1", "pool-test@1")
    assert (train.sample_count, test.sample_count) == (32, 8)
    assert train.parent == test.parent == "pool@1"
    assert train.source == "split"
    assert train.meta["seed"] == 7
    assert train.meta["part"] == "train"
    whole = contents("pool@1")
    assert set(contents("pool-train@1")).isdisjoint(contents("pool-test@1"))
    assert sorted(contents("pool-train@1") + contents("pool-test@1")) == sorted(whole)
    # Original order is kept inside each part.
    assert contents("pool-test@1") == [h for h in whole if h in set(contents("pool-test@1"))]
    assert [v.content_hash for v in again] == [train.content_hash, test.content_hash]
    assert other[1].content_hash != test.content_hash
    assert audit_actions(modelcycle_services).count("dataset.split") == 6


def test_a_stratified_split_keeps_each_labels_share(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    datasets.import_file(admin, "pool", labelled(40))  # 30 "a", 10 "b"

    _, test = datasets.split(
        admin, "pool", SplitIn(ratios={"train": 0.5, "test": 0.5}, stratify_by="label")
    )
    labels = [s.metadata["label"] for s in datasets.samples(admin, test.ref).items]

    assert (labels.count("a"), labels.count("b")) == (15, 5)


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ({"train": 0.8}, "give 2 to 10 ratios"),
        ({"train": 0.8, "test": 0.3}, "ratios add up to 1.1, not 1"),
        ({"train": 1.0, "test": 0.0}, "ratio of 'train' must be between 0 and 1"),
        ({"Train!": 0.5, "test": 0.5}, "split part 'Train!' must be"),
        ({"train": 0.99, "test": 0.01}, "split part 'test' would be empty"),
    ],
)
def test_a_bad_split_is_refused_and_writes_nothing(
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    ratios: dict[str, float],
    message: str,
) -> None:
    datasets = modelcycle_services.datasets
    datasets.import_file(modelcycle_admin.principal, "pool", labelled(10))

    with pytest.raises(InvalidInput, match=message):
        datasets.split(modelcycle_admin.principal, "pool", SplitIn(ratios=ratios))

    assert rows(modelcycle_services, DatasetRow) == 1


def test_dedupe_removes_exact_then_near_duplicates_keeping_the_first(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    datasets.import_file(
        admin,
        "faq",
        jsonl(
            {"input": "How do refunds work?", "expected": "30 days", "id": 1},
            {"input": "How do refunds work?", "expected": "other answer", "id": 2},
            {"input": "how do  REFUNDS work", "id": 3},
            {"input": "Where is my order?", "id": 4},
        ),
    )

    exact = datasets.dedupe(admin, "faq", DedupeIn())
    near = datasets.dedupe(admin, "faq", DedupeIn(near=True))
    nothing = datasets.dedupe(admin, "faq", DedupeIn(near=True))

    assert (exact.removed, exact.created, exact.version.ref) == (1, True, "faq@2")
    assert exact.version.meta == {"from": "faq@1", "removed": 1, "near": False}
    assert exact.version.parent == "faq@1"
    assert [s.metadata["id"] for s in datasets.samples(admin, "faq@2").items] == [1, 3, 4]
    assert (near.removed, near.version.ref) == (1, "faq@3")
    assert [s.metadata["id"] for s in datasets.samples(admin, "faq@3").items] == [1, 4]
    assert (nothing.removed, nothing.created, nothing.version.ref) == (0, False, "faq@3")
    assert audit_actions(modelcycle_services).count("dataset.dedupe") == 2


def test_a_dataset_used_by_an_eval_run_cannot_be_deleted(
    modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal
    used = datasets.import_file(admin, "used", QA)
    datasets.import_file(admin, "spare", QA)
    datasets.import_file(admin, "spare", QA)
    with modelcycle_services.store.write() as session:
        version_id = session.execute(
            select(DatasetVersionRow.id)
            .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
            .where(DatasetRow.name == "used", DatasetVersionRow.version == used.version)
        ).scalar_one()
        session.add(
            EvalRunRow(
                project_id=admin.project_id,
                dataset_version_id=version_id,
                targets=["chat"],
                scorers=[{"name": "exact_match"}],
                gates=[],
                params={},
                status="succeeded",
                created_by="test",
            )
        )

    with pytest.raises(Conflict, match="used by 1 evaluation run"):
        datasets.delete(admin, "used")
    datasets.delete(admin, "spare")

    assert [d.name for d in datasets.list(admin).items] == ["used"]
    assert rows(modelcycle_services, DatasetSampleRow) == 3
    assert audit_actions(modelcycle_services)[-1] == "dataset.delete"


# -- from traces ----------------------------------------------------------------------------

EMAIL = "ada.lovelace@example.com"
WINDOW: dict[str, Any] = {"start": NOW - timedelta(days=1), "end": NOW + timedelta(minutes=1)}


def _prompt(text: str) -> str:
    return json.dumps(
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": text}]
    )


@pytest.fixture
def judged_traces(modelcycle_services: Services, modelcycle_admin: KeyPair) -> dict[str, str]:
    """Four traces of deployment chat (raw text kept) and their feedback."""
    admin = modelcycle_admin.principal
    modelcycle_services.monitor_policies.set(admin, MonitorPolicyUpdate(store_raw_text=True))
    pid = admin.project_id
    spans = {
        "corrected": llm_span(
            pid,
            input=_prompt(f"I am {EMAIL}, where is my order?"),
            output=f"No idea, {EMAIL}.",
        ),
        "down_no_fix": llm_span(pid, input=_prompt("Reset my password"), output="Done."),
        "liked": llm_span(pid, input=_prompt("Hi"), output="Hello!", version=2),
        "unjudged": llm_span(pid, input=_prompt("Anyone?"), output="Yes."),
        "other_deployment": llm_span(pid, deployment="search", input=_prompt("find x")),
    }
    modelcycle_services.recorder.writer.write(list(spans.values()))
    feedback = modelcycle_services.feedback
    feedback.add(
        admin,
        spans["corrected"].trace_id,
        FeedbackCreate(
            thumbs=-1,
            label="wrong-answer",
            correction=f"Your order ships tomorrow; we wrote to {EMAIL}.",
        ),
    )
    feedback.add(admin, spans["down_no_fix"].trace_id, FeedbackCreate(thumbs=-1))
    feedback.add(admin, spans["liked"].trace_id, FeedbackCreate(score=0.9, correction="Hey!"))
    feedback.add(
        admin, spans["other_deployment"].trace_id, FeedbackCreate(thumbs=-1, correction="y")
    )
    return {name: span.trace_id for name, span in spans.items()}


def test_negative_feedback_with_a_correction_becomes_a_scrubbed_sample_with_lineage(
    modelcycle_services: Services, modelcycle_admin: KeyPair, judged_traces: dict[str, str]
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal

    made = datasets.from_traces(
        admin,
        FromTracesIn(
            name="regressions",
            deployment="chat",
            feedback="negative",
            with_correction=True,
            **WINDOW,
        ),
    )
    (sample,) = datasets.samples(admin, made.ref).items

    assert (made.source, made.sample_count) == ("traces", 1)
    assert sample.trace_id == judged_traces["corrected"]
    user_text = sample.input["messages"][1]["content"]
    assert EMAIL not in user_text
    assert user_text == "I am [EMAIL_ADDRESS], where is my order?"
    assert sample.input["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sample.expected == "Your order ships tomorrow; we wrote to [EMAIL_ADDRESS]."
    assert sample.metadata == {
        "deployment": "chat",
        "model": "chat-model",
        "version": 1,
        "feedback_score": 0.0,
        "feedback_label": "wrong-answer",
        # the corrected answer: with the correction, a DPO pair for tuning (scrubbed too)
        "rejected": "No idea, [EMAIL_ADDRESS].",
    }
    assert made.meta["scrubbed"] is True
    assert made.meta["filter"]["feedback"] == "negative"
    assert made.meta["traces"] == 1
    assert audit_actions(modelcycle_services)[-1] == "dataset.from_traces"


def test_trace_filters_select_by_feedback_kind_deployment_and_version(
    modelcycle_services: Services, modelcycle_admin: KeyPair, judged_traces: dict[str, str]
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal

    def traced(**wanted: Any) -> set[str]:
        made = datasets.from_traces(admin, FromTracesIn(name="t", **WINDOW, **wanted))
        return {s.trace_id or "" for s in datasets.samples(admin, made.ref).items}

    ids = judged_traces
    assert traced(deployment="chat", feedback="negative") == {ids["corrected"], ids["down_no_fix"]}
    assert traced(feedback="positive") == {ids["liked"]}
    assert traced(feedback="any", with_correction=True) == {
        ids["corrected"],
        ids["liked"],
        ids["other_deployment"],
    }
    assert traced(deployment="chat", version=2) == {ids["liked"]}
    assert traced(deployment="chat") == {
        ids["corrected"],
        ids["down_no_fix"],
        ids["liked"],
        ids["unjudged"],
    }
    assert len(traced(limit=2)) == 2


def test_expected_can_come_from_the_output_or_be_left_out(
    modelcycle_services: Services, modelcycle_admin: KeyPair, judged_traces: dict[str, str]
) -> None:
    datasets = modelcycle_services.datasets
    admin = modelcycle_admin.principal

    outputs = datasets.from_traces(
        admin, FromTracesIn(name="out", feedback="positive", expected_from="output", **WINDOW)
    )
    blank = datasets.from_traces(
        admin, FromTracesIn(name="blank", feedback="positive", expected_from="none", **WINDOW)
    )

    assert [s.expected for s in datasets.samples(admin, outputs.ref).items] == ["Hello!"]
    assert [s.expected for s in datasets.samples(admin, blank.ref).items] == [None]


def test_keeping_personal_data_needs_an_admin(
    modelcycle_services: Services, modelcycle_admin: KeyPair, judged_traces: dict[str, str]
) -> None:
    datasets = modelcycle_services.datasets
    maintainer = make_key(modelcycle_services, Role.MAINTAINER).principal
    wanted: dict[str, Any] = {"feedback": "negative", "with_correction": True, **WINDOW}

    with pytest.raises(PermissionDenied, match="needs an admin key"):
        datasets.from_traces(maintainer, FromTracesIn(name="raw", scrub=False, **wanted))
    raw = datasets.from_traces(
        modelcycle_admin.principal,
        FromTracesIn(name="raw", scrub=False, deployment="chat", **wanted),
    )

    (sample,) = datasets.samples(modelcycle_admin.principal, raw.ref).items
    assert EMAIL in sample.input["messages"][1]["content"]
    assert raw.meta["scrubbed"] is False


def test_a_filter_matching_no_trace_writes_nothing(
    modelcycle_services: Services, modelcycle_admin: KeyPair, judged_traces: dict[str, str]
) -> None:
    with pytest.raises(InvalidInput, match="no trace matches the filter"):
        modelcycle_services.datasets.from_traces(
            modelcycle_admin.principal,
            FromTracesIn(name="none", deployment="nowhere", **WINDOW),
        )

    assert rows(modelcycle_services, DatasetRow) == 0
