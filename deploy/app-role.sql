-- viihde_app: the database role the app (web, worker, cron) connects as. It owns no
-- table, so it cannot DROP, ALTER or TRUNCATE one, or switch a trigger off; it gets
-- only the rows the code reads and writes. The owner role runs the migrations.
--
-- Once:                 CREATE ROLE viihde_app LOGIN PASSWORD '...';
-- After every upgrade, as the owner of the tables (docs/deploy.md):
--     psql -v ON_ERROR_STOP=1 "$OWNER_DATABASE_URL" -f deploy/app-role.sql
-- It starts from nothing each time, so running it again is safe.

BEGIN;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM viihde_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM viihde_app;
-- Before PostgreSQL 15 every role could create tables in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO viihde_app;

-- The append-only ledgers: the audit log only grows; consent events are never
-- changed, and are deleted only when a person's data is erased. A holder change may
-- say which holding an event belongs to, and nothing else of it.
GRANT SELECT, INSERT ON audit_entries TO viihde_app;
GRANT SELECT, INSERT, DELETE ON consent_events TO viihde_app;
GRANT UPDATE (holding_id) ON consent_events, inbound_messages TO viihde_app;
-- The current state beside the ledger: rewritten with each event, refolded by a holder
-- change, gone with an erasure.
GRANT SELECT, INSERT, UPDATE, DELETE ON consent_states TO viihde_app;

-- People and their codes and messages: kept up to date, deleted by erasure and purge.
GRANT SELECT, INSERT, UPDATE, DELETE ON subscribers, holdings, verifications, sms_messages
    TO viihde_app;
GRANT SELECT, INSERT, DELETE ON sms_status_events, inbound_messages TO viihde_app;
-- The SMS budget's counts: the SMS log's triggers keep them as the app writes the log
-- (as their owner: the app cannot set a count itself), and the purge forgets old ones.
GRANT SELECT, DELETE ON sms_budget_counts TO viihde_app;
-- What an erasure leaves is never deleted.
GRANT SELECT, INSERT ON tombstones TO viihde_app;
-- A STOP from a number the register did not hold: kept, and lifted by its START.
GRANT SELECT, INSERT, DELETE ON refusals TO viihde_app;
-- The hash key's fingerprint: recorded once, by the first check (register/keys.py).
GRANT SELECT, INSERT ON register_keys TO viihde_app;
-- Purge adds the codes it deletes to their day's totals (an upsert).
GRANT SELECT, INSERT, UPDATE ON signup_totals TO viihde_app;
-- Staff, API tokens and campaigns are disabled, revoked or ended, never deleted.
GRANT SELECT, INSERT, UPDATE ON staff_members, api_tokens, campaigns, campaign_messages
    TO viihde_app;
-- /readyz compares the schema's revision with the code's.
GRANT SELECT ON alembic_version TO viihde_app;

-- New ids.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO viihde_app;

COMMIT;
