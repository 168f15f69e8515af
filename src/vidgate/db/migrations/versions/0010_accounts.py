"""Keys get a role (operator, admin, member, reader) in place of ``is_admin``; every
admin action is written to ``audit_log``; money moves through ``ledger``.

The ledger holds one signed row per job and step (reserve, settle, release), so a
retried or replayed step can never write a second one: the primary key refuses it.
What a job counts against a budget is the sum of its rows: its estimate while it is
reserved, its real cost once settled (the settle row holds cost minus reservation), 0
once released (the release row holds minus the reservation). ``booked_at`` is the time
of the reservation, copied onto every row of the job, so a job belongs to the budget
period it was created in, whenever it ends.
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE api_keys ADD COLUMN role text NOT NULL DEFAULT 'member';
        UPDATE api_keys SET role = 'admin' WHERE is_admin;
        ALTER TABLE api_keys DROP COLUMN is_admin;
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_role
            CHECK (role IN ('operator', 'admin', 'member', 'reader'));

        CREATE TABLE audit_log (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            tenant_id text REFERENCES tenants(id),
            action text NOT NULL,
            target text,
            detail jsonb NOT NULL DEFAULT '{}'::jsonb,
            remote_addr text
        );
        CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);

        CREATE TABLE ledger (
            job_id text NOT NULL REFERENCES jobs(id),
            step text NOT NULL,
            tenant_id text NOT NULL REFERENCES tenants(id),
            api_key_id text NOT NULL REFERENCES api_keys(id),
            amount numeric(12, 6) NOT NULL,
            booked_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, step),
            CONSTRAINT ledger_step CHECK (step IN ('reserve', 'settle', 'release'))
        );
        CREATE INDEX ledger_tenant_booked_idx ON ledger (tenant_id, booked_at);
        CREATE INDEX ledger_key_booked_idx ON ledger (api_key_id, booked_at);
    """)


def downgrade() -> None:
    op.execute("""
        DROP TABLE ledger;
        DROP TABLE audit_log;
        ALTER TABLE api_keys ADD COLUMN is_admin boolean NOT NULL DEFAULT false;
        UPDATE api_keys SET is_admin = role IN ('operator', 'admin');
        ALTER TABLE api_keys DROP CONSTRAINT api_keys_role;
        ALTER TABLE api_keys DROP COLUMN role;
    """)
