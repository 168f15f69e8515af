"""Per-project price overrides: ``/v1/admin/price_overrides`` (list, get, set, delete).

Those set here live in the database; those of the models file's ``projects:`` section
are listed beside them (``source: "file"``) and are changed in the file. Every change
is written to the audit log in its own transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.catalog import Catalog
from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.pricing import PriceOverride, check_override
from vidgate.core.project_prices import PriceOverrideRecord, ProjectPrices
from vidgate.db import audit
from vidgate.db.price_overrides import delete_override, list_overrides, put_override
from vidgate.engine.service import Principal
from vidgate.services.scope import project_of


def _not_found(model: str) -> NotFound:
    return NotFound(
        f"no price override of model {model[:64]!r} in this project",
        param="model",
        code="price_override_not_found",
    )


def _detail(override: PriceOverride) -> dict[str, object]:
    if override.multiplier is not None:
        return {"multiplier": str(override.multiplier)}
    assert override.pricing is not None
    return {"pricing": override.pricing.model_dump(mode="json")}


class PriceService:
    def __init__(self, db: AsyncEngine, catalog: Catalog, file_prices: ProjectPrices) -> None:
        self._db = db
        self._catalog = catalog
        self._file = file_prices

    async def list(
        self, principal: Principal, project: str | None = None
    ) -> list[PriceOverrideRecord]:
        """The project's overrides that apply: the database's, then the file's that no
        database row replaces, by model."""
        async with self._db.connect() as conn:
            project_id, name = await project_of(conn, principal, project)
            stored = await list_overrides(conn, project_id)
        held = {r.model for r in stored}
        from_file = [
            PriceOverrideRecord(project_id, model, override, "file")
            for model, override in self._file.of(name).items()
            if model not in held
        ]
        return sorted([*stored, *from_file], key=lambda r: r.model)

    async def get(
        self, principal: Principal, model: str, project: str | None = None
    ) -> PriceOverrideRecord:
        card_id = self._catalog.get(model).id
        for record in await self.list(principal, project):
            if record.model == card_id:
                return record
        raise _not_found(model)

    async def put(
        self,
        principal: Principal,
        model: str,
        override: PriceOverride,
        *,
        project: str | None = None,
        remote_addr: str | None = None,
    ) -> PriceOverrideRecord:
        """Set the project's override of ``model`` (an id or an alias)."""
        card = self._catalog.get(model)
        try:
            check_override(card, override)
        except ValueError as exc:
            raise InvalidParameter(str(exc), param="pricing") from None
        async with self._db.begin() as conn:
            project_id, _ = await project_of(conn, principal, project)
            record = await put_override(conn, project_id, card.id, override)
            await audit.record(
                conn,
                actor=principal.key_id,
                action="price_overrides.set",
                tenant_id=project_id,
                target=card.id,
                detail=_detail(override),
                remote_addr=remote_addr,
            )
        return record

    async def delete(
        self,
        principal: Principal,
        model: str,
        *,
        project: str | None = None,
        remote_addr: str | None = None,
    ) -> None:
        """Remove the project's override of ``model`` set here (one from the models
        file stays: it is changed in the file)."""
        card = self._catalog.get(model)
        async with self._db.begin() as conn:
            project_id, name = await project_of(conn, principal, project)
            if not await delete_override(conn, project_id, card.id):
                if self._file.get(name, card.id) is not None:
                    raise InvalidParameter(
                        f"the override of {card.id} is set in the models file's projects:"
                        " section; change it there",
                        param="model",
                        code="price_override_in_file",
                    )
                raise _not_found(model)
            await audit.record(
                conn,
                actor=principal.key_id,
                action="price_overrides.delete",
                tenant_id=project_id,
                target=card.id,
                remote_addr=remote_addr,
            )
