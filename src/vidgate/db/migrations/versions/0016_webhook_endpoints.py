"""Webhook endpoints per project, their deliveries and every attempt of each.

Events are enqueued by a trigger on ``jobs``, so that every state change that means an
event (a job inserted ``queued``; ``queued`` -> ``submitting``; any move to
``completed``, ``failed`` or ``cancelled``), whichever code path or process makes it,
writes its deliveries in its own transaction. The trigger's WHEN clause is evaluated
without calling the function for the updates that change no state (most of them: poll
write-backs, lease renewals); when it runs, a project without an enabled endpoint costs
one probe of ``webhook_endpoints_tenant_idx``. Each endpoint gets an event at most once
(``UNIQUE (endpoint_id, event_id)``): a job that falls back to ``queued`` and is
claimed again sends no second ``video.in_progress``.

Delivery ids are made by ``vidgate_new_id`` in the shape of ``core/ids.py``'s (a prefix,
10 characters of milliseconds, 16 random ones): sorting them sorts by creation.
"""

from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE webhook_endpoints (
            id text PRIMARY KEY,
            tenant_id text NOT NULL REFERENCES tenants(id),
            url text NOT NULL,
            events text[] NOT NULL,
            secret text NOT NULL,
            previous_secret text,
            previous_secret_expires_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            failing_since timestamptz,
            disabled_at timestamptz,
            disabled_reason text
        );
        CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, id);

        CREATE FUNCTION vidgate_new_id(prefix text) RETURNS text
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            alphabet constant text := '0123456789abcdefghjkmnpqrstvwxyz';
            millis bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
            bytes bytea := uuid_send(gen_random_uuid());
            body text := '';
        BEGIN
            FOR i IN REVERSE 9..0 LOOP
                body := body || substr(alphabet, ((millis >> (5 * i)) & 31)::int + 1, 1);
            END LOOP;
            FOR i IN 0..15 LOOP
                body := body || substr(alphabet, (get_byte(bytes, i) & 31) + 1, 1);
            END LOOP;
            RETURN prefix || '_' || body;
        END $$;

        CREATE TABLE webhook_deliveries (
            id text PRIMARY KEY,
            endpoint_id text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
            job_id text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            event_id text NOT NULL,
            event_type text NOT NULL,
            payload text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            retry boolean NOT NULL DEFAULT true,
            next_attempt_at timestamptz DEFAULT now(),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT webhook_deliveries_status
                CHECK (status IN ('pending', 'delivered', 'failed')),
            CONSTRAINT webhook_deliveries_event UNIQUE (endpoint_id, event_id)
        );
        CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
        CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
            WHERE status = 'pending';

        CREATE TABLE webhook_delivery_attempts (
            delivery_id text NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            attempted_at timestamptz NOT NULL,
            status_code integer,
            error text,
            latency_ms integer NOT NULL,
            response_snippet text,
            PRIMARY KEY (delivery_id, attempt)
        );

        CREATE FUNCTION vidgate_webhook_events() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            event text;
            name text;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                event := 'video.queued';
            ELSIF NEW.state = 'submitting' THEN
                IF OLD.state <> 'queued' THEN
                    RETURN NULL;
                END IF;
                event := 'video.in_progress';
            ELSE
                event := 'video.' || NEW.state;
            END IF;
            name := substr(event, 7);
            INSERT INTO webhook_deliveries
                (id, endpoint_id, job_id, event_id, event_type, payload)
            SELECT vidgate_new_id('whd'), e.id, NEW.id, 'evt_' || NEW.id || '_' || name, event,
                jsonb_build_object(
                    'id', 'evt_' || NEW.id || '_' || name,
                    'object', 'event',
                    'type', event,
                    'created_at', floor(extract(epoch FROM now()))::bigint,
                    'data', jsonb_build_object(
                        'id', NEW.id,
                        'object', 'video',
                        'model', NEW.model,
                        'status', name,
                        'error', CASE WHEN NEW.state IN ('failed', 'cancelled') THEN
                            jsonb_build_object(
                                'code', NEW.error_code, 'message', NEW.error_message)
                        END
                    )
                )::text
            FROM webhook_endpoints e
            WHERE e.tenant_id = NEW.tenant_id AND e.disabled_at IS NULL
                AND event = ANY(e.events)
            ON CONFLICT (endpoint_id, event_id) DO NOTHING;
            IF FOUND THEN
                PERFORM pg_notify('vidgate_endpoint_deliveries', '');
            END IF;
            RETURN NULL;
        END $$;

        CREATE TRIGGER vidgate_webhook_events_insert AFTER INSERT ON jobs
            FOR EACH ROW WHEN (NEW.state = 'queued')
            EXECUTE FUNCTION vidgate_webhook_events();
        CREATE TRIGGER vidgate_webhook_events_update AFTER UPDATE OF state ON jobs
            FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                AND NEW.state IN ('submitting', 'completed', 'failed', 'cancelled'))
            EXECUTE FUNCTION vidgate_webhook_events();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER vidgate_webhook_events_update ON jobs;
        DROP TRIGGER vidgate_webhook_events_insert ON jobs;
        DROP FUNCTION vidgate_webhook_events();
        DROP TABLE webhook_delivery_attempts;
        DROP TABLE webhook_deliveries;
        DROP FUNCTION vidgate_new_id(text);
        DROP TABLE webhook_endpoints;
    """)
