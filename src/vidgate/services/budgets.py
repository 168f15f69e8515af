"""Budgets, as the admin API and the CLI manage them: set (one per project or key and
period), list, read and delete, each change written to the audit log on its own
transaction.

Scope: an admin key acts on its own project only, an operator key on any project
(``project=``, a project id; its own by default). Another project's budget, or a
project the caller may not see, reads as missing. The reservations themselves are made
at create (engine/budgets.py).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.core.budgets import Budget, BudgetStatus, Period, window
from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.ids import looks_like, new_id
from vidgate.db import audit
from vidgate.db import budgets as rows
from vidgate.db.project_names import find_project
from vidgate.engine.service import Principal
from vidgate.services.scope import project_of


def _no_budget(budget_id: str) -> NotFound:
    return NotFound(
        f"no budget with id {budget_id[:64]!r}", param="budget_id", code="budget_not_found"
    )


class BudgetService:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def project_of(self, principal: Principal, project: str | None) -> str:
        """The project ``principal`` acts on: its own, or for an operator ``project``
        (an id or a name; services/scope.py, as the other admin routes)."""
        async with self._db.connect() as conn:
            tenant_id, _ = await project_of(conn, principal, project)
        return tenant_id

    @staticmethod
    def visible_to(principal: Principal) -> str | None:
        """The project whose budgets ``principal`` may read by id; None: any."""
        return None if principal.role == "operator" else principal.tenant_id

    async def tenant_named(self, name: str) -> str | None:
        """The id of the project with that name (or id)."""
        async with self._db.connect() as conn:
            found = await find_project(conn, name)
        return None if found is None else found[0]

    async def list(self, tenant_id: str | None) -> list[BudgetStatus]:
        async with self._db.connect() as conn:
            found = await rows.list_budgets(conn, tenant_id)
            return [await _status(conn, budget) for budget in found]

    async def get(self, budget_id: str, tenant_id: str | None) -> BudgetStatus:
        if not looks_like("budget", budget_id):
            raise _no_budget(budget_id)
        async with self._db.connect() as conn:
            budget = await rows.get_budget(conn, budget_id, tenant_id)
            if budget is None:
                raise _no_budget(budget_id)
            return await _status(conn, budget)

    async def set(
        self,
        tenant_id: str,
        *,
        usd: Decimal,
        period: Period,
        key_id: str | None,
        actor: str,
        remote_addr: str | None = None,
    ) -> tuple[BudgetStatus, bool]:
        """Set the budget of the project, or of its key ``key_id``, for ``period``: the
        budget, and whether it is new."""
        async with self._db.begin() as conn:
            if key_id is not None and await rows.key_tenant(conn, key_id) != tenant_id:
                raise InvalidParameter(
                    f"no key {key_id[:64]!r} in this project", param="key_id", code="key_not_found"
                )
            budget, created = await rows.set_budget(
                conn,
                new_id=new_id("budget"),
                tenant_id=tenant_id,
                api_key_id=key_id,
                period=period,
                usd=usd,
            )
            await audit.record(
                conn,
                actor=actor,
                action="budgets.set",
                tenant_id=tenant_id,
                target=budget.id,
                detail={"key_id": key_id, "period": period, "usd": str(usd), "created": created},
                remote_addr=remote_addr,
            )
            return await _status(conn, budget), created

    async def delete(
        self, budget_id: str, tenant_id: str | None, *, actor: str, remote_addr: str | None = None
    ) -> Budget:
        if not looks_like("budget", budget_id):
            raise _no_budget(budget_id)
        async with self._db.begin() as conn:
            budget = await rows.get_budget(conn, budget_id, tenant_id)
            if budget is None or not await rows.delete_budget(conn, budget_id, tenant_id):
                raise _no_budget(budget_id)
            await audit.record(
                conn,
                actor=actor,
                action="budgets.delete",
                tenant_id=budget.tenant_id,
                target=budget.id,
                detail={
                    "key_id": budget.api_key_id,
                    "period": budget.period,
                    "usd": str(budget.usd),
                },
                remote_addr=remote_addr,
            )
            return budget


async def _status(conn: AsyncConnection, budget: Budget) -> BudgetStatus:
    period = window(budget.period, await rows.now(conn))
    return BudgetStatus(budget, period, await rows.spent(conn, budget, period))
