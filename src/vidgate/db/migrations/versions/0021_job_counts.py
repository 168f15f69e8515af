"""Counts of jobs that reached each final state, per model, for ``vidgate_jobs_total``.

Counting the ``jobs`` table at every scrape grows with every job ever made; this table
grows with the catalogue. A trigger keeps it, in the transaction of each move to
``completed``, ``failed`` or ``cancelled``, so every path that ends a job (and every
process) is counted, and a rolled-back end is not. Rows are spread over 16 shards by
backend pid: a burst of completions of one model on many connections does not queue
on one row lock until each commits; a scrape sums the shards.
"""

from alembic import op

revision = "0021"
down_revision = "0020"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE job_counts (
            state text NOT NULL,
            model text NOT NULL,
            shard smallint NOT NULL,
            n bigint NOT NULL,
            PRIMARY KEY (state, model, shard)
        );
        INSERT INTO job_counts (state, model, shard, n)
            SELECT state, model, 0, count(*) FROM jobs
            WHERE state IN ('completed', 'failed', 'cancelled')
            GROUP BY state, model;
        CREATE FUNCTION vidgate_count_job_end() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO job_counts (state, model, shard, n)
                VALUES (NEW.state, NEW.model, pg_backend_pid() % 16, 1)
                ON CONFLICT (state, model, shard) DO UPDATE SET n = job_counts.n + 1;
            RETURN NULL;
        END $$;
        CREATE TRIGGER vidgate_count_job_end_insert AFTER INSERT ON jobs
            FOR EACH ROW WHEN (NEW.state IN ('completed', 'failed', 'cancelled'))
            EXECUTE FUNCTION vidgate_count_job_end();
        CREATE TRIGGER vidgate_count_job_end_update AFTER UPDATE OF state ON jobs
            FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                               AND NEW.state IN ('completed', 'failed', 'cancelled'))
            EXECUTE FUNCTION vidgate_count_job_end();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER vidgate_count_job_end_update ON jobs;
        DROP TRIGGER vidgate_count_job_end_insert ON jobs;
        DROP FUNCTION vidgate_count_job_end();
        DROP TABLE job_counts;
    """)
