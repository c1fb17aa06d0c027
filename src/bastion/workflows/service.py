"""Workflows as plain async Python: imported or listed definitions, analyses, an account's overrides.

    service = WorkflowsService(platform.db, store=ctx.store, settings=settings.workflows)
    imported = await service.import_definition(user_id, definition)          # GHL-shaped JSON
    analysis = await service.analyze(user_id, AnalyzeRequest(workflow_id=imported.workflow.id), limits)

The engine (``engine/``) does the analysis; this class stores what goes in and what comes out. Every
finding is stored; how many a plan shows is decided when one is read (``views.visible``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, select

from bastion.core.db import Database
from bastion.core.errors import ValidationFailed
from bastion.core.stores.base import Store
from bastion.identity.service import PlanLimits
from bastion.workflows import views
from bastion.workflows.engine import BY_ID, Context, DefinitionError, Overrides, Severity, Workflow, analyze, parse
from bastion.workflows.engine.ghl import parse_triggers
from bastion.workflows.engine.model import signature
from bastion.workflows.errors import (
    DailyAnalysesReached,
    DefinitionUnavailable,
    InvalidDefinition,
    WorkflowNotFound,
)
from bastion.workflows.models import AnalysisRow, OverrideRow, WorkflowRow
from bastion.workflows.schemas import (
    AnalysisView,
    AnalyzeRequest,
    IgnoreEntry,
    Imported,
    OverridesBody,
    WorkflowStructure,
    WorkflowSummary,
)
from bastion.workflows.settings import WorkflowsSettings
from bastion.workflows.upsert import insert_missing

if TYPE_CHECKING:
    from bastion.workflows.ghl.source import GhlSource

DAY = 86_400
# Engine runs longer than this go to a worker thread, so one big workflow does not stall the event loop.
_THREAD_STEPS = 300


def new_id() -> str:
    return uuid.uuid4().hex


class WorkflowsService:
    def __init__(
        self,
        db: Database,
        *,
        store: Store,
        settings: WorkflowsSettings,
        source: GhlSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.source = source
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- definitions -------------------------------------------------------------------------------------

    def parse(self, definition: dict[str, Any] | bytes) -> Workflow:
        try:
            wf = parse(definition)
        except DefinitionError as error:
            raise InvalidDefinition(f"Not a workflow definition: {error}") from None
        if len(wf.steps) + len(wf.triggers) > self.settings.max_steps:
            raise InvalidDefinition(f"The workflow has more than {self.settings.max_steps} steps.")
        return wf

    async def import_definition(self, user_id: str, definition: dict[str, Any], location_id: str = "") -> Imported:
        """Store a definition (a new workflow, or a new version of the one with the same id); validated first."""
        wf = self.parse(definition)
        return await self.save(user_id, "import" if not location_id else "ghl", location_id, wf, definition)

    async def save(
        self, user_id: str, source: str, location_id: str, wf: Workflow, definition: dict[str, Any] | None
    ) -> Imported:
        text = msgspec.json.encode(definition).decode() if definition is not None else None
        key = (
            WorkflowRow.user_id == user_id,
            WorkflowRow.source == source,
            WorkflowRow.location_id == location_id,
            WorkflowRow.external_id == wf.id,
        )
        async with self.db.transaction() as session:
            new = {"id": new_id(), "user_id": user_id, "source": source, "location_id": location_id}
            await insert_missing(
                session, self.db.dialect, WorkflowRow, [{**new, "external_id": wf.id, "updated_at_ms": 0}]
            )
            row = await session.scalar(select(WorkflowRow).where(*key))
            assert row is not None  # inserted above, or by a concurrent import of the same workflow
            created = row.id == new["id"]
            row.name, row.status, row.version = wf.name, wf.status, wf.version
            if text is not None:
                row.definition = text
            row.updated_at_ms = self.now_ms()
            await session.flush()
            return Imported(views.summary(row), created)

    async def workflows(self, user_id: str) -> list[WorkflowSummary]:
        """The user's workflows, GHL's lists synced first (a disconnected location: 403 asking to reconnect)."""
        if self.source is not None:
            await self.source.sync(user_id)
        async with self.db.session() as session:
            rows = await session.scalars(
                select(WorkflowRow).where(WorkflowRow.user_id == user_id).order_by(WorkflowRow.name, WorkflowRow.id)
            )
            return [views.summary(r) for r in rows]

    async def row(self, user_id: str, workflow_id: str) -> WorkflowRow:
        async with self.db.session() as session:
            row = await session.get(WorkflowRow, workflow_id)
        if row is None or row.user_id != user_id:
            raise WorkflowNotFound(f"No workflow {workflow_id!r} in your account.")
        return row

    async def definition_of(self, row: WorkflowRow) -> Workflow:
        if row.definition is None and row.source == "ghl" and self.source is not None:
            fetched = await self.source.definition(row)
            wf = self.parse(fetched)
            text = msgspec.json.encode(fetched).decode()
            async with self.db.transaction() as session:
                stored = await session.get(WorkflowRow, row.id)
                if stored is not None:
                    stored.definition, stored.name, stored.status = text, wf.name or stored.name, wf.status
            row.definition = text
            return wf
        if row.definition is None:
            raise DefinitionUnavailable(
                "GoHighLevel's API lists this workflow but not its steps: export it and send it to "
                "POST /api/workflows/import."
            )
        return self.parse(row.definition.encode())

    async def structure(self, user_id: str, workflow_id: str) -> WorkflowStructure:
        row = await self.row(user_id, workflow_id)
        return views.structure(row, await self.definition_of(row))

    # -- analysis ----------------------------------------------------------------------------------------

    async def analyze(self, user_id: str, request: AnalyzeRequest, limits: PlanLimits) -> AnalysisView:
        if (request.workflow_id is None) == (request.definition is None):
            raise InvalidDefinition("Send either workflowId or definition.")
        if request.definition is not None:
            imported = await self.import_definition(user_id, request.definition)
            workflow_id = imported.workflow.id
        else:
            assert request.workflow_id is not None
            workflow_id = request.workflow_id
        row = await self.row(user_id, workflow_id)
        wf = await self.definition_of(row)
        await self._count_analysis(user_id, limits)
        return views.analysis_view(await self.run(user_id, row, wf), limits.workflow_issues_shown)

    async def run(self, user_id: str, row: WorkflowRow, wf: Workflow) -> AnalysisRow:
        """Analyse ``wf`` (the definition of ``row``) with the account's overrides and context; store it."""
        overrides = await self.overrides_of(user_id)
        context = await self.context_for(user_id, row)
        if len(wf.steps) > _THREAD_STEPS:
            report = await asyncio.to_thread(analyze, wf, context, overrides)
        else:
            report = analyze(wf, context, overrides)
        analysis = AnalysisRow(
            id=new_id(),
            user_id=user_id,
            workflow_id=row.id,
            workflow_name=wf.name,
            workflow_version=wf.version,
            engine_version=report.engine_version,
            score=report.score,
            grade=report.grade,
            findings=views.encode_findings(report),
            created_at_ms=self.now_ms(),
        )
        async with self.db.transaction() as session:
            session.add(analysis)
        return analysis

    async def _count_analysis(self, user_id: str, limits: PlanLimits) -> None:
        cap = limits.analyses_per_day
        if cap is None:
            return
        day = int(self.clock()) // DAY
        used = await self.store.increment(f"analyses:{user_id}:{day}", 1, ttl=2 * DAY)
        if used > cap:
            retry = DAY - int(self.clock()) % DAY
            raise DailyAnalysesReached(
                f"Your plan allows {cap} analyses a day.", extra={"limit": cap}, retry_after=retry
            )

    async def context_for(self, user_id: str, row: WorkflowRow) -> Context:
        """The triggers of the account's other published workflows in the same location (for trigger races)."""
        async with self.db.session() as session:
            others = await session.scalars(
                select(WorkflowRow).where(
                    WorkflowRow.user_id == user_id,
                    WorkflowRow.location_id == row.location_id,
                    WorkflowRow.source == row.source,
                    WorkflowRow.id != row.id,
                    WorkflowRow.status == "published",
                    WorkflowRow.definition.is_not(None),
                )
            )
            definitions = [(o.name or o.external_id, o.definition) for o in others]
        triggers = {}
        for name, text in definitions:
            try:
                found = parse_triggers(text.encode()) if text else ()
            except DefinitionError:
                continue  # stored before a stricter parser: it cannot race with anything we can see
            if found:
                triggers[name] = frozenset(signature(t) for t in found)
        return Context(other_triggers=triggers)

    # -- overrides ---------------------------------------------------------------------------------------

    async def overrides_of(self, user_id: str) -> Overrides:
        async with self.db.session() as session:
            rows = list(await session.scalars(select(OverrideRow).where(OverrideRow.user_id == user_id)))
        return Overrides(
            severity={r.rule_id: Severity(r.severity) for r in rows if r.action == "severity" and r.severity},
            ignore_rules=frozenset(r.rule_id for r in rows if r.action == "ignore" and not r.node_id),
            ignore_nodes=frozenset((r.rule_id, r.node_id) for r in rows if r.action == "ignore" and r.node_id),
        )

    async def overrides_body(self, user_id: str) -> OverridesBody:
        o = await self.overrides_of(user_id)
        ignore = [IgnoreEntry(r) for r in sorted(o.ignore_rules)] + [
            IgnoreEntry(r, n) for r, n in sorted(o.ignore_nodes)
        ]
        return OverridesBody(severity={k: v.value for k, v in sorted(o.severity.items())}, ignore=ignore)

    async def set_overrides(self, user_id: str, body: OverridesBody) -> OverridesBody:
        unknown = sorted({*body.severity, *(i.rule_id for i in body.ignore)} - set(BY_ID))
        if unknown:
            raise ValidationFailed(f"Unknown rule id(s): {', '.join(unknown)}.", extra={"rules": unknown})
        async with self.db.transaction() as session:
            await session.execute(delete(OverrideRow).where(OverrideRow.user_id == user_id))
            whole = {i.rule_id for i in body.ignore if i.node_id is None}
            for rule_id, severity in body.severity.items():
                if rule_id in whole:
                    continue  # an ignored rule has no severity to speak of
                session.add(
                    OverrideRow(user_id=user_id, rule_id=rule_id, node_id="", action="severity", severity=severity)
                )
            for entry in {(i.rule_id, i.node_id or "") for i in body.ignore}:
                session.add(OverrideRow(user_id=user_id, rule_id=entry[0], node_id=entry[1], action="ignore"))
        return await self.overrides_body(user_id)
