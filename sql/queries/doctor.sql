-- Queries of internal/doctor: the live schema, as sorted lines that the
-- expected schema (internal/doctor/expected_schema.json) lists the same way.

-- name: SchemaTablesList
-- Tables, views and sequences of auditdb's schemas, partitions left out
-- (they come and go by month; SchemaPartitionTriggersMissing checks them).
SELECT format('%s (%s)', c.oid::regclass, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
        WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE c.relkind::text END)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname IN ('audit', 'audit_river') OR c.oid = to_regclass('public.audit_log'))
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
ORDER BY 1;

-- name: SchemaFunctionsList
-- Functions of schema audit with SECURITY DEFINER and their settings
-- (search_path). The C accelerator's functions exist only where it is
-- installed, so C functions are left out.
SELECT format('%s%s%s', p.oid::regprocedure,
        CASE WHEN p.prosecdef THEN ' SECURITY DEFINER' ELSE '' END,
        coalesce(' SET ' || array_to_string(p.proconfig, ', '), ''))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = 'audit' AND l.lanname <> 'c'
ORDER BY 1;

-- name: SchemaTriggersList
-- Triggers of the tables of schema audit (partitions left out), with the
-- function they run; the accelerator's C functions (name_c) count as
-- their PL/pgSQL twins, either implementation being expected.
SELECT format('%s: %s %s -> %s', t.tgrelid::regclass, t.tgname,
        CASE t.tgenabled WHEN 'D' THEN 'DISABLED' ELSE 'enabled' END,
        CASE WHEN l.lanname = 'c' THEN regexp_replace(t.tgfoid::regproc::text, '_c$', '') ELSE t.tgfoid::regproc::text END)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = 'audit' AND NOT t.tgisinternal AND NOT c.relispartition
  -- switched on and off at run time by audit.enable_pseudonymisation and
  -- audit.set_compliance
  AND t.tgname NOT IN ('audit_log_pseudonymise', 'audit_log_hipaa')
ORDER BY 1;

-- name: SchemaGrantsList
-- Privileges of auditdb's roles on its schemas, tables, columns and
-- functions, and the roles' memberships.
WITH roles AS (SELECT oid, rolname FROM pg_roles WHERE rolname IN ('audit_writer', 'audit_reader', 'audit_maintainer', 'audit_privacy_officer')),
rels AS (
    SELECT c.oid, c.relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname IN ('audit', 'audit_river') OR c.oid = to_regclass('public.audit_log')) AND NOT c.relispartition
)
SELECT format('%s: %s ON SCHEMA %s', r.rolname, a.privilege_type, n.nspname)
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a JOIN roles r ON r.oid = a.grantee
WHERE n.nspname IN ('audit', 'audit_river', 'public')
UNION ALL
SELECT format('%s: %s ON %s', r.rolname, a.privilege_type, c.oid::regclass)
FROM rels c CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN roles r ON r.oid = a.grantee
UNION ALL
SELECT format('%s: %s (%s) ON %s', r.rolname, a.privilege_type, att.attname, c.oid::regclass)
FROM rels c JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
CROSS JOIN LATERAL aclexplode(att.attacl) a JOIN roles r ON r.oid = a.grantee
UNION ALL
SELECT format('%s: %s ON FUNCTION %s', r.rolname, a.privilege_type, p.oid::regprocedure)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
CROSS JOIN LATERAL aclexplode(p.proacl) a JOIN roles r ON r.oid = a.grantee
WHERE n.nspname IN ('audit', 'audit_river') AND l.lanname <> 'c'
UNION ALL
SELECT format('%s: member of %s', m.rolname, g.rolname)
FROM pg_auth_members am JOIN roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE m.rolname IN (SELECT rolname FROM roles)
ORDER BY 1;

-- name: SchemaPartitionTriggersMissing
-- Every partition of audit.audit_log must carry the parent's row triggers
-- (cloned, enabled) and the statement triggers that are not cloned (the
-- chain-head flush and the TRUNCATE guard) running the parent's function.
WITH parts AS (
    SELECT i.inhrelid AS part FROM pg_inherits i WHERE i.inhparent = 'audit.audit_log'::regclass
),
parent AS (
    SELECT t.oid, t.tgname, t.tgfoid, t.tgtype FROM pg_trigger t
    WHERE t.tgrelid = 'audit.audit_log'::regclass AND NOT t.tgisinternal
)
SELECT format('%s: %s', p.part::regclass, CASE
        WHEN t.oid IS NULL THEN 'lacks trigger ' || pt.tgname
        WHEN t.tgenabled = 'D' THEN 'trigger ' || pt.tgname || ' is disabled'
        ELSE 'trigger ' || pt.tgname || ' runs ' || t.tgfoid::regproc::text || ', not ' || pt.tgfoid::regproc::text END)
FROM parts p CROSS JOIN parent pt
LEFT JOIN pg_trigger t ON t.tgrelid = p.part AND t.tgname = pt.tgname
WHERE (pt.tgtype & 1 = 1 OR pt.tgname IN ('zz_audit_log_chain_flush', 'audit_log_no_truncate'))
  AND (t.oid IS NULL OR t.tgenabled = 'D' OR t.tgfoid <> pt.tgfoid)
UNION ALL
-- the statement triggers also on partitions whose parent lacks them
SELECT format('%s: lacks trigger %s', p.part::regclass, w.name)
FROM parts p CROSS JOIN (VALUES ('zz_audit_log_chain_flush'), ('audit_log_no_truncate')) w(name)
WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = p.part AND t.tgname = w.name)
  AND NOT EXISTS (SELECT 1 FROM parent pt WHERE pt.tgname = w.name)
ORDER BY 1;

-- name: SchemaMigrationsList
-- The steps recorded as applied.
SELECT version, name, checksum FROM audit.schema_migrations ORDER BY version;

-- name: SchemaSearchPathCatalogOnly
-- For the doctor's transaction: names print schema-qualified.
SELECT set_config('search_path', 'pg_catalog', true);
