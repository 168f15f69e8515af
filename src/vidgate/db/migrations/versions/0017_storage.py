"""Storage: what a deleted or expired video's media is, and when a project's expires.

- ``tenants.retention_days``: how long a project keeps the media of its videos after
  they complete; NULL keeps them forever.
- ``jobs.expires_at``: when this video's media expires (NULL: never). Set by the trigger
  ``vidgate_media_expiry`` as a job reaches ``completed`` (from its project's retention,
  in the transaction of that move, whichever process makes it), and rewritten for a
  project's completed videos when its retention changes.
- ``jobs.media_deleted_at``: when the media sweeper (engine/media_gc.py) released the
  job's outputs (deleted or expired); the partial indexes find the jobs still to do.
- ``blob_deletions``: blobs that lost a reference and may be unreferenced now; the
  sweeper deletes each one's object and row once no job refers to it. A row stays
  until that is done, so a sweep killed halfway is finished by the next.
- Indexes that answer "does anything refer to this blob?" without a scan: the three
  output columns, and a job's input image, last frame and source video in its spec.
"""

from alembic import op

revision = "0017"
down_revision = "0016"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE tenants ADD COLUMN retention_days integer
            CONSTRAINT tenants_retention_days CHECK (retention_days > 0);
        ALTER TABLE jobs ADD COLUMN expires_at timestamptz;
        ALTER TABLE jobs ADD COLUMN media_deleted_at timestamptz;

        CREATE INDEX jobs_media_expiry_idx ON jobs (expires_at)
            WHERE expires_at IS NOT NULL AND media_deleted_at IS NULL;
        CREATE INDEX jobs_media_deleted_idx ON jobs (deleted_at)
            WHERE deleted_at IS NOT NULL AND media_deleted_at IS NULL;

        CREATE INDEX job_outputs_video_idx ON job_outputs (video_sha256);
        CREATE INDEX job_outputs_thumbnail_idx ON job_outputs (thumbnail_sha256);
        CREATE INDEX job_outputs_spritesheet_idx ON job_outputs (spritesheet_sha256);
        CREATE INDEX jobs_image_blob_idx ON jobs (((spec -> 'image') ->> 'sha256'))
            WHERE ((spec -> 'image') ->> 'sha256') IS NOT NULL;
        CREATE INDEX jobs_last_frame_blob_idx ON jobs (((spec -> 'last_frame') ->> 'sha256'))
            WHERE ((spec -> 'last_frame') ->> 'sha256') IS NOT NULL;
        CREATE INDEX jobs_source_blob_idx ON jobs (((spec -> 'source') ->> 'sha256'))
            WHERE ((spec -> 'source') ->> 'sha256') IS NOT NULL;

        CREATE TABLE blob_deletions (
            sha256 text PRIMARY KEY,
            requested_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE FUNCTION vidgate_media_expiry() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.expires_at := NEW.completed_at + make_interval(
                days => (SELECT t.retention_days FROM tenants t WHERE t.id = NEW.tenant_id)
            );
            RETURN NEW;
        END $$;
        CREATE TRIGGER vidgate_media_expiry BEFORE UPDATE OF state ON jobs
            FOR EACH ROW
            WHEN (NEW.state = 'completed' AND OLD.state IS DISTINCT FROM 'completed')
            EXECUTE FUNCTION vidgate_media_expiry();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER vidgate_media_expiry ON jobs;
        DROP FUNCTION vidgate_media_expiry();
        DROP TABLE blob_deletions;
        DROP INDEX jobs_source_blob_idx, jobs_last_frame_blob_idx, jobs_image_blob_idx,
            job_outputs_spritesheet_idx, job_outputs_thumbnail_idx, job_outputs_video_idx,
            jobs_media_deleted_idx, jobs_media_expiry_idx;
        ALTER TABLE jobs DROP COLUMN media_deleted_at, DROP COLUMN expires_at;
        ALTER TABLE tenants DROP COLUMN retention_days;
    """)
