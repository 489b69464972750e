"""Traces explorer and trace page: filters, pagination, span tree, guard findings, feedback."""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelcycle.deploy import DeploymentSpec, Route
from modelcycle.monitor import SpanRecord
from modelcycle.monitor.trace_schemas import FeedbackCreate
from modelcycle.services import Services
from modelcycle.testing import KeyPair, make_key, make_project, register
from modelcycle.types import Role
from ui.conftest import PageClient, page_client

TRACE_LINK = re.compile(r'href="/traces/([0-9a-f]{32})"')
NEXT_LINK = re.compile(r'<a rel="next" href="([^"]+)"')
_ids = itertools.count(1)


def llm(project_id: int, *, ago: timedelta = timedelta(minutes=5), **fields: Any) -> SpanRecord:
    """A gateway model call that started ``ago`` before now (so ``range=24h`` holds it)."""
    start = datetime.now(UTC) - ago
    latency = float(fields.pop("latency_ms", 120.0))
    values: dict[str, Any] = {
        "project_id": project_id,
        "trace_id": f"{next(_ids):032x}",
        "span_id": f"{next(_ids):016x}",
        "name": "chat.completions alpha",
        "kind": "llm",
        "source": "gateway",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=latency),
        "duration_ms": latency,
        "ttft_ms": 40.0,
        "status": "ok",
        "endpoint": "chat.completions",
        "deployment": "alpha",
        "model": "alpha-model",
        "version": 1,
        "route": "primary",
        "key_id": 3,
        "input_tokens": 11,
        "output_tokens": 7,
        "cost": 0.0021,
        "input": '[{"role":"user","content":"What is the capital of France?"}]',
        "output": "Paris.",
    }
    values.update(fields)
    return SpanRecord(**values)


def write(services: Services, *spans: SpanRecord) -> None:
    services.recorder.writer.write(list(spans))


def listed(page_html: str) -> list[str]:
    """Trace ids linked from the explorer's table, in order, once each."""
    return list(dict.fromkeys(TRACE_LINK.findall(page_html)))


def feedback_count(services: Services, admin: KeyPair, trace_id: str) -> int:
    return len(services.feedback.list(admin.principal, trace_id))


@pytest.fixture
def three(modelcycle_services: Services, modelcycle_admin: KeyPair) -> dict[str, str]:
    """Three traces on two deployments: France (alpha, ada), refund (alpha), failed (beta)."""
    pid = modelcycle_admin.principal.project_id
    france = llm(pid, ago=timedelta(minutes=3), user_id="ada", session_id="s-1")
    refund = llm(
        pid,
        ago=timedelta(minutes=2),
        input='[{"role":"user","content":"How do refunds work?"}]',
        output="Within 30 days.",
    )
    failed = llm(
        pid,
        ago=timedelta(minutes=1),
        name="chat.completions beta",
        deployment="beta",
        model="beta-model",
        status="error",
        error_type="UpstreamError",
        error_message="upstream timed out",
        input='[{"role":"user","content":"Anyone there?"}]',
        output=None,
        guard="block",
    )
    write(modelcycle_services, france, refund, failed)
    return {"france": france.trace_id, "refund": refund.trace_id, "failed": failed.trace_id}


# -- explorer ------------------------------------------------------------------------


def test_explorer_lists_the_newest_traces_with_their_numbers(
    ui: PageClient, three: dict[str, str]
) -> None:
    page = ui.get("/traces")

    assert page.status_code == 200
    assert listed(page.text) == [three["failed"], three["refund"], three["france"]]
    text = page.text
    assert "What is the capital of France?" in text  # a readable preview, not JSON
    assert "&#34;role&#34;" not in text
    assert '"role"' not in text
    assert "120 ms" in text
    assert "11 / 7" in text
    assert "$0.0021" in text
    assert "alpha-model v1 · primary" in text
    assert '<span class="badge error">error</span>' in text
    assert '<span class="badge block">block</span>' in text  # the guard's decision


FILTER_CASES: list[tuple[str, list[str]]] = [
    ("deployment=beta", ["failed"]),
    ("status=error", ["failed"]),
    ("status=ok", ["refund", "france"]),
    ("text=CAPITAL", ["france"]),
    ("deployment=alpha&text=refund", ["refund"]),
    ("user=ada", ["france"]),
    ("session=s-1", ["france"]),
    ("guard=block", ["failed"]),
    ("version=2", []),
    ("range=1h&deployment=alpha", ["refund", "france"]),
]
"""Query string -> the traces it lists (names of the ``three`` fixture), newest first."""


def test_filters_narrow_the_list(ui: PageClient, three: dict[str, str]) -> None:
    for query, expected in FILTER_CASES:
        page = ui.get(f"/traces?{query}")

        assert page.status_code == 200, query
        assert listed(page.text) == [three[name] for name in expected], query
        if not expected:
            assert "No trace matches these filters" in page.text


def test_a_time_window_outside_the_traffic_lists_nothing(
    ui: PageClient, three: dict[str, str]
) -> None:
    assert listed(ui.get("/traces?start=2020-01-01T00:00&end=2020-01-02T00:00").text) == []
    everything = ui.get("/traces?start=2020-01-01T00:00")
    assert set(listed(everything.text)) == set(three.values())
    assert 'value="2020-01-01T00:00"' in everything.text  # the form keeps what was asked


def test_feedback_filters_find_rated_traces(
    ui: PageClient,
    three: dict[str, str],
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
) -> None:
    admin = modelcycle_admin.principal
    modelcycle_services.feedback.add(admin, three["refund"], FeedbackCreate(thumbs=-1))
    modelcycle_services.feedback.add(admin, three["france"], FeedbackCreate(score=0.9))

    assert listed(ui.get("/traces?feedback=down").text) == [three["refund"]]
    assert listed(ui.get("/traces?feedback=with").text) == [three["refund"], three["france"]]
    assert listed(ui.get("/traces?feedback=without").text) == [three["failed"]]
    good = ui.get("/traces?min_score=0.5")
    assert listed(good.text) == [three["france"]]
    assert 'name="min_score" type="number" size="4" value="0.5"' in good.text
    assert "0.90" in ui.get("/traces?feedback=with").text  # mean score in the table


def test_pages_follow_each_other_without_repeats(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    pid = modelcycle_admin.principal.project_id
    spans = [llm(pid, ago=timedelta(seconds=30 + i)) for i in range(23)]
    write(modelcycle_services, *spans)
    seen: list[str] = []
    url: str | None = "/traces?deployment=alpha&limit=10"
    pages = 0
    while url is not None:
        page = ui.get(url)
        assert page.status_code == 200
        seen += listed(page.text)
        pages += 1
        found = NEXT_LINK.search(page.text)
        url = "/traces" + html.unescape(found.group(1)) if found else None
        if url is not None:
            assert "deployment=alpha" in url
            assert "limit=10" in url

    assert pages == 3
    assert seen == [span.trace_id for span in spans]  # newest first, each once


BAD_FILTERS: list[tuple[str, str]] = [
    ("version=abc", "version"),
    ("status=sideways", "status"),
    ("guard=maybe", "guard"),
    ("feedback=perhaps", "feedback"),
    ("limit=500", "limit"),
    ("cursor=not-a-cursor", "cursor"),
    ("start=yesterday", "start"),
    ("start=2025-06-02T12:00&end=2025-06-01T12:00", "end must be after start"),
    ("min_score=2", "min_score"),
    ("feedback=without&min_score=0.5", "contradicts"),
    ("text=" + "x" * 201, "text"),
]
"""Query string -> what its 400 page must name."""


def test_a_bad_filter_is_a_400_page_naming_it(ui: PageClient) -> None:
    for query, named in BAD_FILTERS:
        page = ui.get(f"/traces?{query}")

        assert page.status_code == 400, query
        assert "Cannot do that" in page.text
        assert named in page.text, query
        assert "Traceback" not in page.text


# -- one trace -----------------------------------------------------------------------


def app_trace(project_id: int) -> list[SpanRecord]:
    """A traced application: a chain with a retriever, a failed and a guarded model call."""
    start = datetime.now(UTC) - timedelta(minutes=2)
    root = SpanRecord(
        project_id=project_id,
        trace_id=f"{next(_ids):032x}",
        span_id=f"{next(_ids):016x}",
        name="answer_question",
        kind="chain",
        source="sdk",
        start_time=start,
        end_time=start + timedelta(milliseconds=900),
        duration_ms=900.0,
        status="ok",
        user_id="ada",
        session_id="s-9",
        input="How do refunds work?",
        output="Within 30 days.",
        attributes={"ticket": 42},
    )
    retriever = replace(
        root,
        span_id=f"{next(_ids):016x}",
        parent_span_id=root.span_id,
        name="search_docs",
        kind="retriever",
        end_time=start + timedelta(milliseconds=50),
        duration_ms=50.0,
        input=None,
        output=None,
        attributes=None,
    )
    failed = llm(
        project_id,
        trace_id=root.trace_id,
        parent_span_id=root.span_id,
        start_time=start + timedelta(milliseconds=60),
        end_time=start + timedelta(milliseconds=300),
        latency_ms=240.0,
        source="sdk",
        status="error",
        error_type="UpstreamTimeout",
        error_message="upstream timed out after 30 s",
        input_tokens=30,
        output_tokens=0,
        cost=None,
    )
    answered = llm(
        project_id,
        trace_id=root.trace_id,
        parent_span_id=root.span_id,
        start_time=start + timedelta(milliseconds=400),
        end_time=start + timedelta(milliseconds=880),
        latency_ms=480.0,
        ttft_ms=95.0,
        version=2,
        route="fallback",
        attempts=3,
        request_id="req-123",
        input=(
            '[{"role":"system","content":"Be brief."},'
            '{"role":"user","content":"Refunds? Mail ada@example.com"}]'
        ),
        output="Within 30 days.",
        guard="redact",
        attributes={
            "guard.findings": [
                {
                    "stage": "input",
                    "index": 1,
                    "detector": "pii",
                    "type": "EMAIL",
                    "action": "redact",
                    "start": 15,
                    "end": 30,
                    "score": 0.98,
                }
            ],
            "guard.ms": 1.25,
        },
        input_tokens=40,
        output_tokens=25,
        cost=0.003,
    )
    return [root, retriever, failed, answered]


def test_trace_page_shows_summary_span_tree_texts_and_guard_findings(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    spans = app_trace(modelcycle_admin.principal.project_id)
    write(modelcycle_services, *spans)

    page = ui.get(f"/traces/{spans[0].trace_id}")

    assert page.status_code == 200
    text = page.text
    assert text.count("<h1>") == 1
    assert spans[0].trace_id in text
    # Summary: totals over model calls, the answering call's version, route, retries.
    assert "70 / 25" in text  # tokens in / out over both model calls
    assert "$0.0030" in text
    assert "alpha-model</a> v2" in text
    assert "fallback used" in text
    assert "<dt>Retries</dt><dd>2</dd>" in text
    assert "95.0 ms" in text  # time to first token of the answer
    assert "req-123" in text
    assert "UpstreamTimeout — upstream timed out after 30 s" in text
    assert '"ticket": 42' in text  # the root's metadata
    # The tree: the chain at depth 0, its three children at depth 1, in start order.
    tree = text[text.index('id="spans-h"') : text.index('id="feedback-h"')]
    order = [m.group(1) for m in re.finditer(r'<li class="depth-(\d)" id="span-', tree)]
    assert order == ["0", "1", "1", "1"]
    assert tree.index("search_docs") < tree.index("timed out") < tree.index("Be brief.")
    assert '<rect class="bar error"' in text
    # Texts read as conversations; guard findings listed with their detector and action.
    assert "system: Be brief.\n\nuser: Refunds? Mail ada@example.com" in text
    assert "EMAIL" in text
    assert "pii" in text
    assert '<span class="badge redact">redact</span>' in text
    assert "15\N{EN DASH}30" in text
    assert "0.98" in text
    assert "Guard detectors took 1.2 ms" in text or "Guard detectors took 1.3 ms" in text
    assert "style=" not in text
    assert "<script>" not in text


def test_an_unknown_or_malformed_trace_is_a_404_page(ui: PageClient) -> None:
    unknown = ui.get(f"/traces/{'f' * 32}")
    assert unknown.status_code == 404
    assert "Not found" in unknown.text
    assert "f" * 32 in unknown.text

    malformed = ui.get("/traces/not%20a%20trace!")
    assert malformed.status_code == 404


# -- feedback ------------------------------------------------------------------------


def test_feedback_form_stores_feedback_and_lists_it_on_the_trace(
    ui: PageClient,
    three: dict[str, str],
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
) -> None:
    trace_id = three["france"]
    form = ui.get(f"/traces/{trace_id}")
    assert f'action="/traces/{trace_id}/feedback"' in form.text

    sent = ui.post(
        f"/traces/{trace_id}/feedback",
        {
            "thumbs": "down",
            "score": "",
            "label": "wrong-answer",
            "comment": "It cites the wrong city.",
            "correction": "Paris is the capital of France.",
        },
    )

    assert sent.status_code == 303
    assert sent.headers["location"].startswith(f"/traces/{trace_id}?notice=")
    stored = modelcycle_services.feedback.list(modelcycle_admin.principal, trace_id)
    assert [(f.thumbs, f.score, f.label, f.comment, f.correction) for f in stored] == [
        (-1, 0.0, "wrong-answer", "It cites the wrong city.", "Paris is the capital of France.")
    ]
    assert (stored[0].deployment, stored[0].version) == ("alpha", 1)
    shown = ui.get(sent.headers["location"])
    assert "Feedback saved." in shown.text
    assert "It cites the wrong city." in shown.text
    assert "thumbs down" in shown.text
    assert "No feedback yet." not in shown.text

    scored = ui.post(f"/traces/{trace_id}/feedback", {"score": "0.75"})
    assert scored.status_code == 303
    assert [
        f.score for f in modelcycle_services.feedback.list(modelcycle_admin.principal, trace_id)
    ] == [
        0.0,
        0.75,
    ]


BAD_FEEDBACK: list[tuple[dict[str, str], str]] = [
    ({"score": "abc"}, "score"),
    ({"score": "1.5"}, "score"),
    ({"score": "nan"}, "score"),
    ({"score": "0.5", "thumbs": "up"}, "either score or thumbs"),
    ({"thumbs": "sideways"}, "thumbs"),
    ({"comment": "   "}, "feedback needs a score"),
    ({"label": "x" * 65}, "label"),
]
"""Feedback form -> what its 400 page must name."""


def test_bad_feedback_is_a_400_page_and_stores_nothing(
    ui: PageClient,
    three: dict[str, str],
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
) -> None:
    for form, named in BAD_FEEDBACK:
        sent = ui.post(f"/traces/{three['france']}/feedback", form)

        assert sent.status_code == 400, form
        assert named in sent.text, form
    assert feedback_count(modelcycle_services, modelcycle_admin, three["france"]) == 0


def test_feedback_on_an_unknown_trace_is_a_404_page(ui: PageClient) -> None:
    sent = ui.post(f"/traces/{'e' * 32}/feedback", {"thumbs": "up"})

    assert sent.status_code == 404
    assert "not found" in sent.text


def test_a_viewer_may_give_feedback_as_the_api_allows(
    modelcycle_services: Services, modelcycle_admin: KeyPair, three: dict[str, str]
) -> None:
    # feedback.add needs only the ``app`` role, below the dashboard's ``viewer``: every
    # signed-in role may rate a trace, and the feedback is recorded as that key's.
    viewer = make_key(modelcycle_services, Role.VIEWER)
    client = page_client(modelcycle_services, viewer.key)
    with client.http:
        assert "Send feedback" in client.get(f"/traces/{three['refund']}").text
        sent = client.post(f"/traces/{three['refund']}/feedback", {"thumbs": "up"})

    assert sent.status_code == 303
    stored = modelcycle_services.feedback.list(modelcycle_admin.principal, three["refund"])
    assert [(f.thumbs, f.actor) for f in stored] == [(1, viewer.principal.actor)]


def test_another_projects_viewer_sees_no_trace_and_cannot_rate_it(
    modelcycle_services: Services, modelcycle_admin: KeyPair, three: dict[str, str]
) -> None:
    outsider = make_key(modelcycle_services, Role.VIEWER, make_project(modelcycle_services))
    client = page_client(modelcycle_services, outsider.key)
    with client.http:
        assert listed(client.get("/traces").text) == []
        assert client.get(f"/traces/{three['france']}").status_code == 404
        sent = client.post(f"/traces/{three['france']}/feedback", {"thumbs": "up"})

    assert sent.status_code == 404
    assert feedback_count(modelcycle_services, modelcycle_admin, three["france"]) == 0


def test_feedback_without_the_csrf_token_or_a_session_is_refused(
    ui: PageClient,
    modelcycle_services: Services,
    modelcycle_admin: KeyPair,
    three: dict[str, str],
) -> None:
    url = f"/traces/{three['france']}/feedback"
    forged = ui.http.post(url, data={"thumbs": "up"}, follow_redirects=False)
    assert forged.status_code == 403

    cross_site = ui.http.post(
        url,
        data={"thumbs": "up", "csrf": ui.csrf},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross_site.status_code == 403

    anonymous = page_client(modelcycle_services, None)
    with anonymous.http:
        assert anonymous.get("/traces", follow_redirects=False).status_code == 303  # sign in
        assert anonymous.post(url, {"thumbs": "up"}).status_code == 401
    assert feedback_count(modelcycle_services, modelcycle_admin, three["france"]) == 0


# -- real gateway traffic ------------------------------------------------------------


def test_gateway_requests_are_listed_and_shown(
    ui: PageClient, modelcycle_services: Services, modelcycle_admin: KeyPair
) -> None:
    admin = modelcycle_admin.principal
    register(modelcycle_services, admin, "support-model")
    modelcycle_services.deployments.create(
        admin, DeploymentSpec(name="support", routes=[Route(target="support-model@1", weight=100)])
    )
    app = make_key(modelcycle_services, Role.APP)
    answer = ui.http.post(
        "/v1/chat/completions",
        json={"model": "support", "messages": [{"role": "user", "content": "Where is my parcel?"}]},
        headers={"Authorization": f"Bearer {app.key}", "X-Modelcycle-User": "grace"},
    )
    assert answer.status_code == 200
    modelcycle_services.recorder.flush()

    page = ui.get("/traces?deployment=support")
    ids = listed(page.text)
    assert len(ids) == 1
    assert "Where is my parcel?" in page.text
    assert "grace" in page.text

    shown = ui.get(f"/traces/{ids[0]}")
    assert shown.status_code == 200
    assert "user: Where is my parcel?" in shown.text
    assert answer.json()["choices"][0]["message"]["content"] in shown.text
    assert '<a href="/deployments/support">support</a>' in shown.text
    by_key = f"/traces?key={app.principal.key_id}&range=24h"
    assert f'href="{by_key.replace("&", "&amp;")}"' in shown.text
    assert listed(ui.get(by_key).text) == ids  # the key's traffic, one link away
