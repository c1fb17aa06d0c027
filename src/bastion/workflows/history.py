"""The history of a user's analyses: pages (keyset cursors), one analysis, delete, diff, export."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from sqlalchemy import and_, delete, or_, select

from bastion.core.db import Database
from bastion.core.errors import ValidationFailed
from bastion.workflows import export, views
from bastion.workflows.errors import AnalysisNotFound, DiffMismatch
from bastion.workflows.models import AnalysisRow
from bastion.workflows.schemas import AnalysisDiff, AnalysisView, DiffSide, HistoryPage, Issue

ExportFormat = Literal["markdown", "sarif"]


def encode_cursor(row: AnalysisRow) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at_ms}:{row.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, id_ = raw.partition(":")
        if not id_ or len(id_) > 32:
            raise ValueError(raw)
        return int(at), id_
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("The cursor is not one this API handed out.") from None


class History:
    def __init__(self, db: Database, *, page_size: int) -> None:
        self.db = db
        self.page_size = page_size

    async def page(
        self, user_id: str, cursor: str | None = None, limit: int | None = None, workflow_id: str | None = None
    ) -> HistoryPage:
        """Newest first; ``next_cursor`` continues after the last item (stable while analyses are added)."""
        size = min(limit or self.page_size, 200)
        query = select(AnalysisRow).where(AnalysisRow.user_id == user_id)
        if workflow_id is not None:
            query = query.where(AnalysisRow.workflow_id == workflow_id)
        if cursor is not None:
            at, id_ = decode_cursor(cursor)
            query = query.where(
                or_(AnalysisRow.created_at_ms < at, and_(AnalysisRow.created_at_ms == at, AnalysisRow.id < id_))
            )
        query = query.order_by(AnalysisRow.created_at_ms.desc(), AnalysisRow.id.desc()).limit(size + 1)
        async with self.db.session() as session:
            rows = list(await session.scalars(query))
        more = len(rows) > size
        rows = rows[:size]
        return HistoryPage(
            items=[views.analysis_summary(r, len(views.decode_findings(r))) for r in rows],
            next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        )

    async def row(self, user_id: str, analysis_id: str) -> AnalysisRow:
        async with self.db.session() as session:
            row = await session.get(AnalysisRow, analysis_id)
        if row is None or row.user_id != user_id:
            raise AnalysisNotFound(f"No analysis {analysis_id!r} in your history.")
        return row

    async def get(self, user_id: str, analysis_id: str, shown: int | None) -> AnalysisView:
        return views.analysis_view(await self.row(user_id, analysis_id), shown)

    async def delete(self, user_id: str, analysis_id: str) -> None:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(AnalysisRow).where(AnalysisRow.id == analysis_id, AnalysisRow.user_id == user_id)
            )
        if getattr(result, "rowcount", 0) == 0:
            raise AnalysisNotFound(f"No analysis {analysis_id!r} in your history.")

    async def clear(self, user_id: str) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(delete(AnalysisRow).where(AnalysisRow.user_id == user_id))
        return int(getattr(result, "rowcount", 0) or 0)

    async def diff(self, user_id: str, base_id: str, head_id: str, shown: int | None) -> AnalysisDiff:
        """What changed from ``base`` to ``head`` (two analyses of one workflow): new, fixed, unchanged issues.

        An issue is the same in both when its rule and node ids are (messages may name a renamed step).
        """
        base, head = await self.row(user_id, base_id), await self.row(user_id, head_id)
        if base.workflow_id != head.workflow_id:
            raise DiffMismatch("Both analyses must be of the same workflow.")
        before, after = views.decode_findings(base), views.decode_findings(head)
        keys_before = {(i.rule_id, tuple(i.node_ids)) for i in before}
        keys_after = {(i.rule_id, tuple(i.node_ids)) for i in after}
        return AnalysisDiff(
            base_id=base.id,
            head_id=head.id,
            workflow_id=head.workflow_id,
            score_change=head.score - base.score,
            new=_side([i for i in after if (i.rule_id, tuple(i.node_ids)) not in keys_before], shown),
            fixed=_side([i for i in before if (i.rule_id, tuple(i.node_ids)) not in keys_after], shown),
            unchanged=_side([i for i in after if (i.rule_id, tuple(i.node_ids)) in keys_before], shown),
        )

    async def export(self, user_id: str, analysis_id: str, fmt: ExportFormat, shown: int | None) -> tuple[str, bytes]:
        view = await self.get(user_id, analysis_id, shown)
        if fmt == "markdown":
            return "text/markdown; charset=utf-8", export.markdown(view).encode()
        return "application/sarif+json", export.sarif(view)


def _side(issues: list[Issue], shown: int | None) -> DiffSide:
    show, hidden = views.visible(issues, shown)
    return DiffSide(issues=show, total=len(issues), hidden=hidden)
