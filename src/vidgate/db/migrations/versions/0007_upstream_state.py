"""What an adapter keeps about an upstream task moves out of the upstream id into its
own column, ``jobs.upstream_state`` (providers/base.py: ``SubmitResult.state``).

Ids written by earlier versions are unpacked by their shape, so that jobs in flight
across the upgrade (and completed Kling videos extended later) keep working:

- Kling ``<kind>:<task id>`` -> the task id, state ``{"kind": <kind>}``;
- Vertex and Gemini Veo ``<operation name>#n=<count>`` -> the operation name (the
  count is the spec's ``n``);
- Gemini Omni ``interactions/<id>`` -> the id, state ``{"api": "interactions"}``;
- fal ``<app>/requests/<request id>`` -> the request id, state ``{"app": <app>}``.

A Kling source packed into a spec not yet submitted (``spec.source.upstream_id``) is
unpacked the same way."""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute(r"""
        ALTER TABLE jobs ADD COLUMN upstream_state jsonb;
        UPDATE jobs SET
            upstream_state = jsonb_build_object('kind', split_part(upstream_id, ':', 1)),
            upstream_id = substr(upstream_id, strpos(upstream_id, ':') + 1)
            WHERE upstream_id ~ '^(text2video|image2video|video-extend):.';
        UPDATE jobs SET upstream_id = regexp_replace(upstream_id, '#n=[0-9]+$', '')
            WHERE upstream_id ~ '#n=[0-9]+$';
        UPDATE jobs SET
            upstream_state = '{"api": "interactions"}',
            upstream_id = substr(upstream_id, length('interactions/') + 1)
            WHERE upstream_id ~ '^interactions/.';
        UPDATE jobs SET
            upstream_state = jsonb_build_object(
                'app', regexp_replace(upstream_id, '/requests/[^/]+$', '')),
            upstream_id = regexp_replace(upstream_id, '^.*/requests/', '')
            WHERE upstream_id ~ '^[^/]+(/[^/]+)*/requests/[^/]+$';
        UPDATE jobs SET spec = jsonb_set(
                jsonb_set(spec, '{source,upstream_state}', jsonb_build_object(
                    'kind', split_part(spec #>> '{source,upstream_id}', ':', 1))),
                '{source,upstream_id}',
                to_jsonb(substr(spec #>> '{source,upstream_id}',
                    strpos(spec #>> '{source,upstream_id}', ':') + 1)))
            WHERE spec #>> '{source,upstream_id}' ~ '^(text2video|image2video|video-extend):.';
    """)


def downgrade() -> None:
    op.execute(r"""
        UPDATE jobs SET spec = jsonb_set(spec #- '{source,upstream_state}',
                '{source,upstream_id}',
                to_jsonb((spec #>> '{source,upstream_state,kind}') || ':'
                    || (spec #>> '{source,upstream_id}')))
            WHERE spec #> '{source,upstream_state}' ? 'kind';
        UPDATE jobs SET upstream_id = (upstream_state ->> 'kind') || ':' || upstream_id
            WHERE upstream_state ? 'kind';
        UPDATE jobs SET upstream_id = 'interactions/' || upstream_id
            WHERE upstream_state ->> 'api' = 'interactions';
        UPDATE jobs SET upstream_id = (upstream_state ->> 'app') || '/requests/' || upstream_id
            WHERE upstream_state ? 'app';
        UPDATE jobs SET upstream_id = upstream_id || '#n=' || (spec ->> 'n')
            WHERE upstream_id ~ '^(projects|models)/.+/operations/.' AND upstream_state IS NULL;
        ALTER TABLE jobs DROP COLUMN upstream_state;
    """)
