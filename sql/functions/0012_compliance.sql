-- auditdb step 12: GDPR and HIPAA support.
--
--   legal_holds           holds by subject, resource or organization; erasure
--                         of anything a hold covers is refused
--   erasure_requests      GDPR art. 17 requests, their progress (the worker's
--                         erasure job resumes from here after a crash)
--   pseudonymisation      per-organization keys for write-time pseudonyms
--   pseudonyms            pseudonym -> principal_id, readable only by
--                         audit_privacy_officer
--   set_compliance(...)   HIPAA / GDPR modes, recorded in audit.settings and
--                         enforced here, so every client gets the same rules

CREATE TABLE IF NOT EXISTS audit.legal_holds (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope                text NOT NULL CHECK (scope IN ('subject', 'resource', 'organization')),
    -- subject: a principal_id or target_resource_id; resource: the
    -- target_resource_id with target_resource_type; organization: its id
    value                text NOT NULL CHECK (length(value) BETWEEN 1 AND 255),
    target_resource_type text,
    reason               text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    created_by           text NOT NULL DEFAULT current_user,
    created_at           timestamptz NOT NULL DEFAULT now(),
    released_at          timestamptz,
    released_by          text,
    CHECK ((scope = 'resource') = (target_resource_type IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS legal_holds_active_idx ON audit.legal_holds (scope, value) WHERE released_at IS NULL;

CREATE TABLE IF NOT EXISTS audit.erasure_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the subject while the request is open (as principal, as target
    -- resource, or both); NULL once it is done or refused, so the values do
    -- not outlive the request in this table
    principal_id  text CHECK (length(principal_id) BETWEEN 1 AND 255),
    resource_type text CHECK (length(resource_type) BETWEEN 1 AND 255),
    resource_id   text CHECK (length(resource_id) BETWEEN 1 AND 255),
    -- the stable token that replaces the subject's ids (HMAC of the subject
    -- under a key derived from the seal key, which never enters the
    -- database); set by the worker when it starts
    token        text,
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'refused')),
    rows_total   bigint NOT NULL DEFAULT 0,
    rows_done    bigint NOT NULL DEFAULT 0,
    -- organizations of the erased rows, for purging cached reads; no PII
    organizations text[] NOT NULL DEFAULT '{}',
    requested_by text NOT NULL DEFAULT current_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text,
    CHECK ((resource_type IS NULL) = (resource_id IS NULL)),
    CHECK ((status IN ('done', 'refused')) = (principal_id IS NULL AND resource_id IS NULL))
);

-- HMAC-SHA-256 (RFC 2104) with the core sha256(), so that pgcrypto is not
-- required (managed PostgreSQL may lack it).
CREATE OR REPLACE FUNCTION audit.hmac_sha256(key bytea, msg bytea)
RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    k  bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
    ip bytea;
    op bytea;
BEGIN
    k := k || ('\x' || repeat('00', 64 - length(k)))::bytea;
    ip := k;
    op := k;
    FOR i IN 0..63 LOOP
        ip := set_byte(ip, i, get_byte(k, i) # 54);   -- 0x36
        op := set_byte(op, i, get_byte(k, i) # 92);   -- 0x5c
    END LOOP;
    RETURN sha256(op || sha256(ip || msg));
END
$$;

CREATE TABLE IF NOT EXISTS audit.pseudonymisation (
    organization_id text PRIMARY KEY,
    key             bytea NOT NULL CHECK (length(key) = 32),
    enabled_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS audit.pseudonyms (
    organization_id text NOT NULL,
    pseudonym       text NOT NULL,
    principal_id    text NOT NULL,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, pseudonym)
);
CREATE INDEX IF NOT EXISTS pseudonyms_principal_idx ON audit.pseudonyms (principal_id);

-- Replaces principal_id by 'psn_' || 32 hex of HMAC(org key, principal_id)
-- before the integrity trigger (zz_...) hashes the row, and records the
-- mapping for the privacy officer.
CREATE OR REPLACE FUNCTION audit.audit_log_pseudonymise()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k bytea;
    p text;
BEGIN
    IF NEW.principal_id IS NULL OR NEW.organization_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT key INTO k FROM audit.pseudonymisation WHERE organization_id = NEW.organization_id;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    p := 'psn_' || encode(substr(audit.hmac_sha256(k, convert_to(NEW.principal_id, 'UTF8')), 1, 16), 'hex');
    INSERT INTO audit.pseudonyms (organization_id, pseudonym, principal_id)
    VALUES (NEW.organization_id, p, NEW.principal_id)
    ON CONFLICT DO NOTHING;
    NEW.principal_id := p;
    RETURN NEW;
END
$$;

-- What an erasure leaves of a row's PII, as hex SHA-256 of the pii
-- commitment's encoding without a salt (the commitment with an empty salt):
-- sealed into the row's redaction record, since without the salt the
-- commitment no longer binds the values.
CREATE OR REPLACE FUNCTION audit.remaining_pii(principal_id text, target_resource_id text, source_ip inet,
    outcome_description text, details jsonb)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
RETURN encode(audit.pii_commitment(''::bytea, principal_id, target_resource_id, source_ip,
    outcome_description, details), 'hex');

-- A principal's ids as rows record them: itself and the pseudonyms written
-- for it in every organization (empty for NULL or ''). Runs as its owner so
-- erasure and export find pseudonymised rows; callable by the worker and
-- the privacy officer only.
CREATE OR REPLACE FUNCTION audit.subject_principal_ids(principal_id text)
RETURNS text[] LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN coalesce(principal_id, '') = '' THEN '{}'::text[] ELSE
    ARRAY(SELECT principal_id UNION SELECT p.pseudonym FROM audit.pseudonyms p WHERE p.principal_id = subject_principal_ids.principal_id)
END;

-- Turns write-time pseudonymisation on for an organization (idempotent).
-- The trigger exists only while some organization uses it, so nobody else
-- pays for it.
CREATE OR REPLACE FUNCTION audit.enable_pseudonymisation(organization_id text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF organization_id IS NULL OR organization_id = '' THEN
        RAISE EXCEPTION 'enable_pseudonymisation: organization_id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO audit.pseudonymisation (organization_id, key)
    VALUES (organization_id, sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')))
    ON CONFLICT DO NOTHING;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit.audit_log'::regclass AND tgname = 'audit_log_pseudonymise') THEN
        CREATE TRIGGER audit_log_pseudonymise BEFORE INSERT ON audit.audit_log
            FOR EACH ROW EXECUTE FUNCTION audit.audit_log_pseudonymise();
    END IF;
END
$$;

-- Turns it off for new events. The key and the mappings stay, so earlier
-- pseudonyms can still be resolved by the privacy officer.
CREATE OR REPLACE FUNCTION audit.disable_pseudonymisation(organization_id text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM audit.pseudonymisation p WHERE p.organization_id = disable_pseudonymisation.organization_id;
    IF NOT EXISTS (SELECT 1 FROM audit.pseudonymisation) THEN
        DROP TRIGGER IF EXISTS audit_log_pseudonymise ON audit.audit_log;
    END IF;
END
$$;

-- HIPAA mode: a PHI event must say who accessed what. The error names the
-- field and the rule, never a value (a CHECK constraint would print the row).
CREATE OR REPLACE FUNCTION audit.audit_log_hipaa()
RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.data_classification = 'PHI' THEN
        IF NEW.principal_id IS NULL OR NEW.principal_id = '' THEN
            RAISE EXCEPTION 'audit_log.principal_id: required for PHI events in HIPAA mode'
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.target_resource_id IS NULL OR NEW.target_resource_id = '' THEN
            RAISE EXCEPTION 'audit_log.target_resource_id: required for PHI events in HIPAA mode'
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

-- HIPAA (45 CFR 164.316(b)(2)) keeps documentation six years: no PHI
-- retention policy may keep less while HIPAA mode is on.
CREATE OR REPLACE FUNCTION audit.retention_policies_hipaa()
RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.data_classification = 'PHI' AND NEW.retention_days < 2190
       AND (SELECT value FROM audit.settings WHERE key = 'hipaa_enabled') = 'true' THEN
        RAISE EXCEPTION 'retention_policies.retention_days: PHI policies keep at least 2190 days (six years) in HIPAA mode'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit.retention_policies'::regclass
                   AND tgname = 'retention_policies_hipaa') THEN
        CREATE TRIGGER retention_policies_hipaa BEFORE INSERT OR UPDATE ON audit.retention_policies
            FOR EACH ROW EXECUTE FUNCTION audit.retention_policies_hipaa();
    END IF;
END
$$;

INSERT INTO audit.settings (key, value) VALUES ('hipaa_enabled', 'false'), ('gdpr_enabled', 'true')
ON CONFLICT (key) DO NOTHING;

-- Sets the compliance modes (NULL leaves one as it is) and returns them.
-- Turning HIPAA on is refused while a PHI policy keeps less than six years.
CREATE OR REPLACE FUNCTION audit.set_compliance(hipaa boolean, gdpr boolean,
    OUT hipaa_enabled boolean, OUT gdpr_enabled boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    short text;
BEGIN
    IF hipaa THEN
        SELECT string_agg(policy_name, ', ') INTO short FROM audit.retention_policies
        WHERE data_classification = 'PHI' AND retention_days < 2190;
        IF short IS NOT NULL THEN
            RAISE EXCEPTION 'HIPAA mode: PHI retention policies % keep less than 2190 days (six years)', short
                USING ERRCODE = 'check_violation';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit.audit_log'::regclass AND tgname = 'audit_log_hipaa') THEN
            CREATE TRIGGER audit_log_hipaa BEFORE INSERT ON audit.audit_log
                FOR EACH ROW EXECUTE FUNCTION audit.audit_log_hipaa();
        END IF;
    ELSIF NOT hipaa THEN
        DROP TRIGGER IF EXISTS audit_log_hipaa ON audit.audit_log;
    END IF;
    IF hipaa IS NOT NULL THEN
        UPDATE audit.settings SET value = hipaa::text WHERE key = 'hipaa_enabled';
    END IF;
    IF gdpr IS NOT NULL THEN
        UPDATE audit.settings SET value = gdpr::text WHERE key = 'gdpr_enabled';
    END IF;
    SELECT s.value::boolean INTO hipaa_enabled FROM audit.settings s WHERE s.key = 'hipaa_enabled';
    SELECT s.value::boolean INTO gdpr_enabled FROM audit.settings s WHERE s.key = 'gdpr_enabled';
END
$$;

-- audit_privacy_officer resolves pseudonyms; nobody else reads them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'audit_privacy_officer') THEN
        CREATE ROLE audit_privacy_officer NOLOGIN;
    END IF;
END
$$;
REVOKE ALL ON audit.legal_holds, audit.erasure_requests, audit.pseudonymisation, audit.pseudonyms FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit.enable_pseudonymisation(text), audit.disable_pseudonymisation(text),
    audit.set_compliance(boolean, boolean), audit.audit_log_pseudonymise(),
    audit.subject_principal_ids(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.subject_principal_ids(text) TO audit_maintainer, audit_privacy_officer;
GRANT SELECT ON audit.pseudonyms TO audit_privacy_officer;
GRANT USAGE ON SCHEMA audit TO audit_privacy_officer;
GRANT SELECT ON audit.legal_holds TO audit_reader;
GRANT SELECT, INSERT, UPDATE ON audit.legal_holds, audit.erasure_requests TO audit_maintainer;
GRANT DELETE ON audit.pseudonyms TO audit_maintainer;
GRANT SELECT ON audit.pseudonyms TO audit_maintainer;
-- erasure: the worker may change the PII columns only, and only with
-- auditdb.maintenance = 'erasure' (the append-only guard); the hashed core
-- columns stay out of its reach
GRANT UPDATE (principal_id, target_resource_id, source_ip, outcome_description, details, pii_salt)
    ON audit.audit_log TO audit_maintainer;
GRANT EXECUTE ON FUNCTION audit.enable_pseudonymisation(text), audit.disable_pseudonymisation(text),
    audit.set_compliance(boolean, boolean) TO audit_maintainer;
