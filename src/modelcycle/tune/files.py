"""Uploaded files (``/v1/files``): training and validation data for fine-tuning jobs.

A file is checked *before* anything is stored: each non-blank line must be a
JSON object that makes a training example, in OpenAI's chat format
(``{"messages": [..., {"role": "assistant", ...}]}``), its preference format
(``{"input": {"messages": [...]}, "preferred_output": [...],
"non_preferred_output": [...]}``) or our prompt/completion and
prompt/chosen/rejected shapes; one file holds one kind. The first bad line is
a 400 naming its number and the reason, and nothing is written. The
conversion itself is ``tune.data.example_of_line``: the job reads the file
through the same function, so a file accepted here trains.

The bytes land under ``home/files/<file_id>`` (written to a temporary name,
renamed into place inside the database transaction that adds the row and the
audit entry; any failure removes both). Uploading and deleting need a
maintainer; reading, a viewer. A file a waiting or running job uses cannot be
deleted. See docs/openai-fine-tuning.md.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import secrets
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from modelcycle.access import Principal, require
from modelcycle.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from modelcycle.jobs.schemas import FINISHED_STATES
from modelcycle.store import Store, audit
from modelcycle.store.audit import AuditRecord
from modelcycle.store.tables import FileRow, JobRow, TuneJobRow, utcnow
from modelcycle.tune.data import example_of_line
from modelcycle.types import Role

log = logging.getLogger(__name__)

PURPOSES = ("fine-tune",)
"""The purposes a file may be uploaded for; OpenAI's others have nothing to serve them here."""
MAX_FILE_BYTES = 50 * 1024 * 1024
"""The largest file accepted (50 MiB: a few hundred thousand chat examples)."""
MAX_LIST = 10_000
FileKind = Literal["chat", "preference"]


class FileInfo(BaseModel):
    """An uploaded file as the service returns it."""

    id: str
    """``file-`` and 24 hex digits."""
    purpose: str
    filename: str
    bytes: int
    lines: int
    """Examples in the file (non-blank lines)."""
    sha256: str
    created_by: str
    created_at: datetime


def new_file_id() -> str:
    """``file-`` and 24 hex digits, as OpenAI's file ids look."""
    return "file-" + secrets.token_hex(12)


def _line_kind(record: Mapping[str, Any]) -> FileKind:
    preference = ("preferred_output", "non_preferred_output", "chosen", "rejected")
    return "preference" if any(key in record for key in preference) else "chat"


def check_lines(content: bytes) -> int:
    """The number of examples in a fine-tuning file; ``InvalidInput`` at the first bad line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSONL",
            param="file",
        ) from None
    first: tuple[int, FileKind] | None = None
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not valid JSON ({exc.msg})", param="file") from None
        if not isinstance(record, Mapping):
            raise InvalidInput(f"line {number}: expected a JSON object", param="file")
        kind = _line_kind(record)
        if first is None:
            first = (number, kind)
        elif kind != first[1]:
            raise InvalidInput(
                f"line {number}: a {kind} example, but line {first[0]} is a {first[1]} example; "
                "a file holds one kind (chat examples for supervised jobs, preference pairs "
                "for dpo jobs)",
                param="file",
            )
        found = example_of_line(record, f"line {number}", "dpo" if kind == "preference" else "sft")
        if isinstance(found, str):
            raise InvalidInput(f"line {number}: {found}", param="file")
        count += 1
    if count == 0:
        raise InvalidInput("the file has no examples; write one JSON object per line", param="file")
    return count


def clean_filename(filename: str | None) -> str:
    """The name shown for a file: its last path part, printable, at most 255 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255] or "upload.jsonl"


def _info(row: FileRow) -> FileInfo:
    return FileInfo(
        id=row.file_id,
        purpose=row.purpose,
        filename=row.filename,
        bytes=row.bytes,
        lines=row.lines,
        sha256=row.sha256,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class Files:
    """Uploaded files of every project; each operation acts in the caller's project."""

    def __init__(self, store: Store, home: Path):
        self._store = store
        self.directory = home / "files"
        """Where the bytes live, one file per id (``FileRow.path`` is relative to it)."""

    # -- writing -------------------------------------------------------------------------

    def upload(
        self, principal: Principal, purpose: str, filename: str | None, content: bytes
    ) -> FileInfo:
        """Check and store a file (maintainer+, audited ``file.upload``)."""
        require(principal, Role.MAINTAINER)
        if purpose not in PURPOSES:
            raise InvalidInput(
                f"purpose {purpose!r} is not supported; upload training data with "
                f"purpose {PURPOSES[0]!r}",
                param="purpose",
            )
        if len(content) > MAX_FILE_BYTES:
            raise PayloadTooLarge(
                f"the file has {len(content)} bytes; files of at most {MAX_FILE_BYTES} bytes "
                "are accepted: split it into several files",
                param="file",
            )
        lines = check_lines(content)
        file_id = new_file_id()
        row = FileRow(
            file_id=file_id,
            project_id=principal.project_id,
            purpose=purpose,
            filename=clean_filename(filename),
            bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            lines=lines,
            path=file_id,
            created_by=principal.actor[:100],
            created_at=utcnow(),
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / file_id
        staging = self.directory / f".{file_id}.part"
        try:
            with staging.open("wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            with self._store.write() as session:
                session.add(row)
                audit.append(
                    session,
                    AuditRecord(
                        actor=principal.actor,
                        action="file.upload",
                        target=f"file:{file_id}",
                        project=principal.project,
                        after={
                            "purpose": purpose,
                            "filename": row.filename,
                            "bytes": row.bytes,
                            "lines": lines,
                            "sha256": row.sha256,
                        },
                    ),
                )
                session.flush()
                os.replace(staging, final)  # in place only if the rows commit (else removed)
                info = _info(row)
        except BaseException:
            staging.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        return info

    def delete(self, principal: Principal, file_id: str) -> None:
        """Delete a file (maintainer+, audited ``file.delete``); 409 while a job needs it."""
        require(principal, Role.MAINTAINER)
        with self._store.write() as session:
            row = self._own(session, principal, file_id)
            users = session.execute(
                select(TuneJobRow.public_id)
                .join(JobRow, JobRow.id == TuneJobRow.job_id)
                .where(
                    TuneJobRow.project_id == principal.project_id,
                    or_(
                        TuneJobRow.training_file_id == file_id,
                        TuneJobRow.validation_file_id == file_id,
                    ),
                    JobRow.state.not_in(FINISHED_STATES),
                )
            ).scalars()
            waiting = builtins.list(users)
            if waiting:
                raise Conflict(
                    f"file {file_id} is used by fine-tuning job {waiting[0]}, which has not "
                    "finished; cancel it or wait for it first",
                    param="file_id",
                )
            path = self.directory / row.path
            audit.append(
                session,
                AuditRecord(
                    actor=principal.actor,
                    action="file.delete",
                    target=f"file:{file_id}",
                    project=principal.project,
                    before={"filename": row.filename, "bytes": row.bytes, "sha256": row.sha256},
                ),
            )
            session.delete(row)
            session.flush()
        try:  # after the commit: a failed commit leaves the file and its row as they were
            path.unlink(missing_ok=True)
        except OSError as exc:  # pragma: no cover - the row is gone; the bytes are orphaned
            log.warning("could not remove %s: %s", path, exc)

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _own(session: Session, principal: Principal, file_id: str) -> FileRow:
        row = session.execute(
            select(FileRow).where(
                FileRow.file_id == file_id, FileRow.project_id == principal.project_id
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param="file_id")
        return row

    def get(self, principal: Principal, file_id: str) -> FileInfo:
        """One file of the caller's project (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            return _info(self._own(session, principal, file_id))

    def content(self, principal: Principal, file_id: str) -> tuple[FileInfo, bytes]:
        """A file and its bytes (viewer+)."""
        require(principal, Role.VIEWER)
        with self._store.read() as session:
            row = self._own(session, principal, file_id)
            info, path = _info(row), self.directory / row.path
        try:
            return info, path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"the content of file {file_id} is missing from the server's storage",
                param="file_id",
            ) from None

    def list(
        self,
        principal: Principal,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10_000,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[builtins.list[FileInfo], bool]:
        """Files of the caller's project, newest first by default; and whether more follow.

        ``after`` is the id of the last file of the previous page.
        """
        require(principal, Role.VIEWER)
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIST}", param="limit")
        query = select(FileRow).where(FileRow.project_id == principal.project_id)
        if purpose is not None:
            query = query.where(FileRow.purpose == purpose)
        with self._store.read() as session:
            if after is not None:
                mark = self._own(session, principal, after).id
                query = query.where(FileRow.id < mark if order == "desc" else FileRow.id > mark)
            ordering = FileRow.id.desc() if order == "desc" else FileRow.id.asc()
            rows = session.execute(query.order_by(ordering).limit(limit + 1)).scalars().all()
            return [_info(row) for row in rows[:limit]], len(rows) > limit
