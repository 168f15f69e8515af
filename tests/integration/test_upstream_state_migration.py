"""Migration 0007: upstream ids packed by earlier versions move into jobs.upstream_state."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import command

from vidgate.db.embedded import to_sqlalchemy_url
from vidgate.db.migrate import alembic_config

# (packed id as stored before 0007, spec.n, id after, state after)
_ROWS: list[tuple[str, int, str, dict[str, Any] | None]] = [
    ("image2video:8812", 1, "8812", {"kind": "image2video"}),
    ("video-extend:77", 1, "77", {"kind": "video-extend"}),
    ("projects/p/locations/l/publishers/google/models/veo/operations/op1#n=2", 2,
     "projects/p/locations/l/publishers/google/models/veo/operations/op1", None),
    ("models/veo-3/operations/op2#n=1", 1, "models/veo-3/operations/op2", None),
    ("interactions/v1_abc", 1, "v1_abc", {"api": "interactions"}),
    ("fal-ai/kling-video/requests/r-1", 1, "r-1", {"app": "fal-ai/kling-video"}),
    ("comfy/me/flow/requests/r-2", 1, "r-2", {"app": "comfy/me/flow"}),
    # Everything else is the upstream's own id already.
    ("cgt-2025-xyz", 1, "cgt-2025-xyz", None),
    ("video_abc", 1, "video_abc", None),
    ("0a1b2c3d-uuid", 1, "0a1b2c3d-uuid", None),
]  # fmt: skip


def _run(url: str, action: str, revision: str) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


def _rows(url: str, query: str) -> list[Any]:
    engine = sa.create_engine(to_sqlalchemy_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def _insert_jobs(url: str) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(url), poolclass=sa.NullPool)
    source = {"video_id": "v", "sha256": "0" * 64, "seconds": 5, "width": 1, "height": 1}
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO tenants (id, name) VALUES ('t', 't')"))
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, mode)"
                    " VALUES ('k', 't', 'k', 'p', 'x', 'test')"
                )
            )
            rows = [(f"job{i}", packed, {"n": n}) for i, (packed, n, _, _) in enumerate(_ROWS)]
            # A Kling extend queued before the upgrade: its source's id is packed too.
            kling_source = {**source, "provider": "kling", "upstream_id": "text2video:55"}
            rows.append(("queued_extend", None, {"n": 1, "source": kling_source}))
            for job_id, upstream_id, spec in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO jobs (id, tenant_id, api_key_id, mode, model, kind, spec,"
                        " state, provider, upstream_id, estimated_cost)"
                        " VALUES (:id, 't', 'k', 'test', 'm', 'generate', CAST(:spec AS jsonb),"
                        " 'waiting', 'd', :upstream, 0)"
                    ),
                    {"id": job_id, "spec": json.dumps(spec), "upstream": upstream_id},
                )
    finally:
        engine.dispose()


def test_0007_unpacks_ids_and_downgrade_packs_them_again(empty_database_url: str) -> None:
    database_url = empty_database_url
    _run(database_url, "upgrade", "0006")
    _insert_jobs(database_url)
    _run(database_url, "upgrade", "0007")

    found = {
        row.id: (row.upstream_id, row.upstream_state)
        for row in _rows(database_url, "SELECT id, upstream_id, upstream_state FROM jobs")
    }
    for i, (packed, _, unpacked, state) in enumerate(_ROWS):
        assert found[f"job{i}"] == (unpacked, state), packed
    [(source,)] = _rows(database_url, "SELECT spec->'source' FROM jobs WHERE id = 'queued_extend'")
    assert source["upstream_id"] == "55" and source["upstream_state"] == {"kind": "text2video"}

    _run(database_url, "downgrade", "0006")
    found = {
        row.id: row.upstream_id for row in _rows(database_url, "SELECT id, upstream_id FROM jobs")
    }
    for i, (packed, _, _, _) in enumerate(_ROWS):
        assert found[f"job{i}"] == packed
    [(source,)] = _rows(database_url, "SELECT spec->'source' FROM jobs WHERE id = 'queued_extend'")
    assert source["upstream_id"] == "text2video:55" and "upstream_state" not in source
