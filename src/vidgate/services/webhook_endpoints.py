"""Webhook endpoints of a project, as the admin API manages them: create (the secret is
answered once), list, read, delete, rotate the secret, enable again; their deliveries
and a resend of one.

An admin key acts on its own project; an operator key on any (``project`` when it
creates or lists, any endpoint by id). Another project's endpoint reads exactly like
one that does not exist. Every change is written to the audit log on its own
transaction, never with a secret.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vidgate.config import Settings
from vidgate.core.errors import Conflict, InvalidParameter, InvalidRequest, NotFound
from vidgate.core.ids import looks_like, new_id
from vidgate.core.urls import check_outbound_url
from vidgate.core.webhook_endpoints import (
    EVENTS,
    MAX_ENDPOINTS,
    DeliveryRecord,
    EndpointRecord,
    NewSecret,
)
from vidgate.db import audit
from vidgate.db import webhook_endpoints as store
from vidgate.engine.service import Principal
from vidgate.engine.webhooks import new_secret
from vidgate.services.scope import project_of

ENDPOINT_PREFIX = "we"
DELIVERY_PREFIX = "whd"


def _missing(endpoint_id: str) -> NotFound:
    return NotFound(
        f"no webhook endpoint with id {endpoint_id[:64]!r}",
        param="endpoint_id",
        code="webhook_endpoint_not_found",
    )


class EndpointService:
    def __init__(self, db: AsyncEngine, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @staticmethod
    def _scope(principal: Principal) -> str | None:
        """The tenant a caller's reads by id are confined to; None: any (an operator)."""
        return None if principal.role == "operator" else principal.tenant_id

    @staticmethod
    async def _project(conn: AsyncConnection, principal: Principal, project: str | None) -> str:
        # An admin key sees no other project: it reads as one that does not exist.
        tenant_id, _ = await project_of(conn, principal, project)
        return tenant_id

    async def _owned(
        self, conn: AsyncConnection, principal: Principal, endpoint_id: str, *, lock: bool = False
    ) -> EndpointRecord:
        if not looks_like(ENDPOINT_PREFIX, endpoint_id):
            raise _missing(endpoint_id)
        found = await store.get_endpoint(
            conn, endpoint_id, tenant_id=self._scope(principal), for_update=lock
        )
        if found is None:
            raise _missing(endpoint_id)
        return found

    async def create(
        self,
        principal: Principal,
        *,
        url: str,
        events: Sequence[str],
        project: str | None,
        remote_addr: str | None,
    ) -> NewSecret:
        check_outbound_url(url, allow_insecure=self._settings.allow_insecure_urls, param="url")
        chosen = [event for event in EVENTS if event in set(events)]
        if not chosen:
            raise InvalidParameter(
                f"events must name at least one of: {', '.join(EVENTS)}", param="events"
            )
        secret = new_secret()
        async with self._db.begin() as conn:
            tenant_id = await self._project(conn, principal, project)
            if await store.count_endpoints(conn, tenant_id) >= MAX_ENDPOINTS:
                raise InvalidRequest(
                    f"a project has at most {MAX_ENDPOINTS} webhook endpoints; delete one first",
                    code="endpoint_limit_reached",
                )
            endpoint = await store.insert_endpoint(
                conn,
                endpoint_id=new_id(ENDPOINT_PREFIX),
                tenant_id=tenant_id,
                url=url,
                events=chosen,
                secret=secret,
            )
            await self._audit(
                conn, principal, "create", endpoint, remote_addr, {"url": url, "events": chosen}
            )
        return NewSecret(endpoint, secret)

    async def list_endpoints(
        self, principal: Principal, *, project: str | None
    ) -> list[EndpointRecord]:
        async with self._db.connect() as conn:
            tenant_id = await self._project(conn, principal, project)
            return await store.list_endpoints(conn, tenant_id)

    async def get(self, principal: Principal, endpoint_id: str) -> EndpointRecord:
        async with self._db.connect() as conn:
            return await self._owned(conn, principal, endpoint_id)

    async def delete(
        self, principal: Principal, endpoint_id: str, *, remote_addr: str | None
    ) -> EndpointRecord:
        async with self._db.begin() as conn:
            await self._owned(conn, principal, endpoint_id)
            gone = await store.delete_endpoint(conn, endpoint_id, tenant_id=self._scope(principal))
            if gone is None:
                raise _missing(endpoint_id)
            await self._audit(conn, principal, "delete", gone, remote_addr, {"url": gone.url})
        return gone

    async def rotate_secret(
        self, principal: Principal, endpoint_id: str, *, remote_addr: str | None
    ) -> NewSecret:
        secret = new_secret()
        async with self._db.begin() as conn:
            await self._owned(conn, principal, endpoint_id)
            endpoint = await store.rotate_secret(
                conn, endpoint_id, secret, tenant_id=self._scope(principal)
            )
            if endpoint is None:
                raise _missing(endpoint_id)
            await self._audit(conn, principal, "rotate_secret", endpoint, remote_addr, {})
        return NewSecret(endpoint, secret)

    async def enable(
        self, principal: Principal, endpoint_id: str, *, remote_addr: str | None
    ) -> EndpointRecord:
        async with self._db.begin() as conn:
            before = await self._owned(conn, principal, endpoint_id, lock=True)
            endpoint = await store.enable_endpoint(
                conn, endpoint_id, tenant_id=self._scope(principal)
            )
            if endpoint is None:
                raise _missing(endpoint_id)
            if before.disabled_at is not None:
                await self._audit(
                    conn,
                    principal,
                    "enable",
                    endpoint,
                    remote_addr,
                    {"disabled_reason": before.disabled_reason},
                )
        return endpoint

    async def deliveries(
        self, principal: Principal, endpoint_id: str, *, after: str | None, limit: int
    ) -> tuple[list[DeliveryRecord], bool]:
        if after is not None and not looks_like(DELIVERY_PREFIX, after):
            raise InvalidParameter(
                f"after {after[:64]!r} is not a delivery id; allowed: the id of a delivery,"
                " such as the last_id of the previous page",
                param="after",
            )
        async with self._db.connect() as conn:
            await self._owned(conn, principal, endpoint_id)
            rows = await store.list_deliveries(conn, endpoint_id, after=after, limit=limit + 1)
        return rows[:limit], len(rows) > limit

    async def resend(
        self,
        principal: Principal,
        endpoint_id: str,
        delivery_id: str,
        *,
        remote_addr: str | None,
    ) -> DeliveryRecord:
        missing = NotFound(
            f"no delivery with id {delivery_id[:64]!r} to this endpoint",
            param="delivery_id",
            code="delivery_not_found",
        )
        async with self._db.begin() as conn:
            endpoint = await self._owned(conn, principal, endpoint_id, lock=True)
            if not looks_like(DELIVERY_PREFIX, delivery_id):
                raise missing
            if endpoint.disabled_at is not None:
                raise Conflict(
                    f"webhook endpoint {endpoint_id} is disabled ({endpoint.disabled_reason});"
                    " enable it first (POST /v1/webhook_endpoints/{id}/enable)",
                    param="endpoint_id",
                    code="endpoint_disabled",
                )
            if await store.resend_delivery(conn, endpoint_id, delivery_id) is None:
                raise missing
            await store.notify_deliverers(conn)
            await audit.record(
                conn,
                actor=principal.key_id,
                action="webhook_deliveries.resend",
                tenant_id=endpoint.tenant_id,
                target=delivery_id,
                detail={"endpoint_id": endpoint_id},
                remote_addr=remote_addr,
            )
            delivery = await store.get_delivery(conn, endpoint_id, delivery_id)
        assert delivery is not None
        return delivery

    @staticmethod
    async def _audit(
        conn: AsyncConnection,
        principal: Principal,
        verb: str,
        endpoint: EndpointRecord,
        remote_addr: str | None,
        detail: dict[str, object],
    ) -> None:
        await audit.record(
            conn,
            actor=principal.key_id,
            action=f"webhook_endpoints.{verb}",
            tenant_id=endpoint.tenant_id,
            target=endpoint.id,
            detail=detail,
            remote_addr=remote_addr,
        )
