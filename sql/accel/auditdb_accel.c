/*
 * auditdb_accel: the insert trigger of INTEGRITY.md v1 in C.
 *
 * An optional accelerator for servers that can load C code (not managed
 * PostgreSQL services). It does exactly what audit.audit_log_before_insert()
 * does in PL/pgSQL, byte for byte, at a fraction of the cost per row:
 * validation with the same messages, the chain state in the same
 * transaction-local setting (auditdb.chain_state), chain acquisition through
 * the same audit.chain_acquire(), the same salt derivation, encoding and
 * hashes. audit.use_accelerator(true) switches the trigger to it; the
 * PL/pgSQL function stays installed and is the reference.
 *
 * J(...) is built as json_build_array(...)::text would: "[" elements ", "
 * "]", strings escaped as escape_json does, jsonb through its own text
 * output, inet through inet_out.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "access/xact.h"
#include "utils/builtins.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "port/pg_bswap.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

/*
 * OpenSSL's one-shot SHA-256 rather than pg_cryptohash: with OpenSSL 3 every
 * pg_cryptohash_init re-fetches the algorithm, which cost more than the rest
 * of the row put together (measured: 18 us a row against 5).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(audit_log_before_insert_c);
PG_FUNCTION_INFO_V1(chain_acquire_c);
PG_FUNCTION_INFO_V1(audit_log_flush_chain_head_c);

/* microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01 */
#define UNIX_EPOCH_OFFSET_US INT64CONST(946684800000000)

enum
{
	C_ID, C_CHAIN_ID, C_CHAIN_SEQ, C_TIMESTAMP, C_RECORDED_AT, C_ACTION, C_STATUS,
	C_PRINCIPAL_TYPE, C_ORGANIZATION_ID, C_TARGET_RESOURCE_TYPE, C_EVENT_VERSION,
	C_CORRELATION_ID, C_DATA_CLASSIFICATION, C_RETENTION_POLICY, C_PROCESSING_LATENCY,
	C_TTL, C_PRINCIPAL_ID, C_TARGET_RESOURCE_ID, C_SOURCE_IP, C_OUTCOME_DESCRIPTION,
	C_DETAILS, C_PII_SALT, C_PII_COMMITMENT, C_HASH, N_COLS
};

static const char *const col_names[N_COLS] = {
	"id", "chain_id", "chain_seq", "timestamp", "recorded_at", "action", "status",
	"principal_type", "organization_id", "target_resource_type", "event_version",
	"correlation_id", "data_classification", "retention_policy", "processing_latency",
	"ttl", "principal_id", "target_resource_id", "source_ip", "outcome_description",
	"details", "pii_salt", "pii_commitment", "hash"
};

/* Column numbers of one relation, cached in the trigger's fn_extra. */
typedef struct ColMap
{
	Oid			relid;
	int			attnum[N_COLS];
} ColMap;

static Oid	chain_acquire_oid = InvalidOid;
static Oid	id_sequence_oid = InvalidOid;

/* the advisory lock namespace of the chains: audit.chain_lock_namespace() */
#define CHAIN_LOCK_NAMESPACE 1635083380

static int	chain_count = 0;
static SPIPlanPtr read_head_plan = NULL;
static SPIPlanPtr flush_plan = NULL;

static void
sha256_parts(const uint8 *a, size_t alen, const uint8 *b, size_t blen, uint8 *out)
{
	SHA256_CTX	ctx;

	if (!SHA256_Init(&ctx) || !SHA256_Update(&ctx, a, alen) ||
		(blen > 0 && !SHA256_Update(&ctx, b, blen)) || !SHA256_Final(out, &ctx))
		elog(ERROR, "auditdb: SHA-256 failed");
}

/* Decodes exactly nbytes from 2*nbytes hex digits (PostgreSQL's hex_decode). */
static void
hex_decode_fixed(const char *hex, uint8 *out, int nbytes)
{
	if (strlen(hex) != (size_t) nbytes * 2 ||
		hex_decode(hex, nbytes * 2, (char *) out) != (uint64) nbytes)
		elog(ERROR, "auditdb: malformed auditdb.chain_state");
}

/* Lowercase hex of n bytes into out, NUL-terminated (PostgreSQL's hex_encode). */
static void
hex_encode_into(const uint8 *in, int n, char *out)
{
	out[hex_encode((const char *) in, n, out)] = '\0';
}

/*
 * Splits a copy of auditdb.chain_state, "chain/seq/head/seed", into its four
 * fields.
 */
static void
parse_state(const char *st, char *f[4])
{
	f[0] = pstrdup(st);
	for (int i = 1; i < 4; i++)
	{
		f[i] = strchr(f[i - 1], '/');
		if (f[i] == NULL)
			elog(ERROR, "auditdb: malformed auditdb.chain_state");
		*f[i]++ = '\0';
	}
}

static void
reject(const char *col, int errcode_value, const char *rule)
{
	ereport(ERROR,
			(errcode(errcode_value),
			 errmsg("audit_log.%s: %s", col, rule),
			 err_generic_string(PG_DIAG_COLUMN_NAME, col)));
}

/* characters, as length() counts them */
static int
text_chars(Datum d)
{
	text	   *t = DatumGetTextPP(d);

	return pg_mbstrlen_with_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * The rules of audit.reject_invalid_event, in the same order, same words.
 * Returns the text form of details (NULL when details is NULL), which the
 * size rule needs and the encoding reuses.
 */
static char *
validate(Datum *v, bool *n)
{
	char	   *details_text = NULL;

	static const int required[] = {C_TIMESTAMP, C_ACTION, C_STATUS, C_DATA_CLASSIFICATION, C_RETENTION_POLICY};
	static const struct
	{
		int			col;
		int			cap;
	}			caps[] = {
		{C_ACTION, 255}, {C_PRINCIPAL_ID, 255}, {C_PRINCIPAL_TYPE, 255}, {C_ORGANIZATION_ID, 255},
		{C_TARGET_RESOURCE_TYPE, 255}, {C_TARGET_RESOURCE_ID, 255}, {C_CORRELATION_ID, 255},
		{C_TTL, 255}, {C_EVENT_VERSION, 20}, {C_RETENTION_POLICY, 50}, {C_OUTCOME_DESCRIPTION, 10000}
	};
	char	   *s;

	for (int i = 0; i < lengthof(required); i++)
		if (n[required[i]])
			reject(col_names[required[i]], ERRCODE_NOT_NULL_VIOLATION, "is required");

	if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(v[C_TIMESTAMP])))
		reject("timestamp", ERRCODE_CHECK_VIOLATION, "must be a finite time, not infinity");
	s = TextDatumGetCString(v[C_STATUS]);
	if (strcmp(s, "attempt") != 0 && strcmp(s, "success") != 0 && strcmp(s, "failure") != 0)
		reject("status", ERRCODE_CHECK_VIOLATION, "must be one of attempt, success, failure");
	s = TextDatumGetCString(v[C_DATA_CLASSIFICATION]);
	if (strcmp(s, "PUBLIC") != 0 && strcmp(s, "INTERNAL") != 0 &&
		strcmp(s, "CONFIDENTIAL") != 0 && strcmp(s, "PHI") != 0)
		reject("data_classification", ERRCODE_CHECK_VIOLATION,
			   "must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI");
	if (text_chars(v[C_ACTION]) == 0)
		reject("action", ERRCODE_CHECK_VIOLATION, "must not be empty");
	if (text_chars(v[C_RETENTION_POLICY]) == 0)
		reject("retention_policy", ERRCODE_CHECK_VIOLATION, "must not be empty");
	for (int i = 0; i < lengthof(caps); i++)
	{
		if (!n[caps[i].col] && text_chars(v[caps[i].col]) > caps[i].cap)
		{
			char		rule[64];

			snprintf(rule, sizeof(rule), "longer than %d characters", caps[i].cap);
			reject(col_names[caps[i].col], ERRCODE_STRING_DATA_RIGHT_TRUNCATION, rule);
		}
	}
	if (!n[C_DETAILS])
	{
		Jsonb	   *j = DatumGetJsonbP(v[C_DETAILS]);

		if (!JB_ROOT_IS_OBJECT(j))
		{
			const char *kind = JB_ROOT_IS_SCALAR(j) ? "scalar" : "array";

			if (JB_ROOT_IS_SCALAR(j))
			{
				/* jsonb_typeof's words for a scalar */
				JsonbValue	sv;

				if (JsonbExtractScalar(&j->root, &sv))
					kind = sv.type == jbvString ? "string" : sv.type == jbvNumeric ? "number" :
						sv.type == jbvBool ? "boolean" : "null";
			}
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("audit_log.details: must be a JSON object, not %s", kind),
					 err_generic_string(PG_DIAG_COLUMN_NAME, "details")));
		}
		details_text = JsonbToCString(NULL, &j->root, VARSIZE(j));
		if (strlen(details_text) > 65536)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("audit_log.details: larger than 65536 bytes as JSON text"),
					 err_generic_string(PG_DIAG_COLUMN_NAME, "details")));
	}
	if (!n[C_PROCESSING_LATENCY] && DatumGetInt32(v[C_PROCESSING_LATENCY]) < 0)
		reject("processing_latency", ERRCODE_CHECK_VIOLATION, "must not be negative");
	return details_text;
}

/*
 * Appends s as a JSON string, byte for byte what escape_json() writes, but
 * copying runs of plain bytes at once (escape_json appends one character at
 * a time, which was half the cost of a row).
 */
static void
append_json_string(StringInfo b, const char *s, int len)
{
	static const char digits[] = "0123456789abcdef";
	int			start = 0;

	appendStringInfoChar(b, '"');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		appendBinaryStringInfo(b, s + start, i - start);
		switch (c)
		{
			case '"':
				appendStringInfoString(b, "\\\"");
				break;
			case '\\':
				appendStringInfoString(b, "\\\\");
				break;
			case '\b':
				appendStringInfoString(b, "\\b");
				break;
			case '\f':
				appendStringInfoString(b, "\\f");
				break;
			case '\n':
				appendStringInfoString(b, "\\n");
				break;
			case '\r':
				appendStringInfoString(b, "\\r");
				break;
			case '\t':
				appendStringInfoString(b, "\\t");
				break;
			default:
				{
					char		u[7] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 0xf], '\0'};

					appendStringInfoString(b, u);
				}
		}
		start = i + 1;
	}
	appendBinaryStringInfo(b, s + start, len - start);
	appendStringInfoChar(b, '"');
}

/* J() element writers */
static void
j_sep(StringInfo b)
{
	appendStringInfoString(b, ", ");
}

static void
j_text(StringInfo b, Datum *v, bool *n, int c)
{
	j_sep(b);
	if (n[c])
		appendStringInfoString(b, "null");
	else
	{
		text	   *t = DatumGetTextPP(v[c]);

		append_json_string(b, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
}

static void
j_int(StringInfo b, int64 x)
{
	j_sep(b);
	appendStringInfo(b, INT64_FORMAT, x);
}

static ColMap *
colmap_for(FunctionCallInfo fcinfo, Relation rel)
{
	ColMap	   *m = (ColMap *) fcinfo->flinfo->fn_extra;
	TupleDesc	desc = RelationGetDescr(rel);

	if (m != NULL && m->relid == RelationGetRelid(rel))
		return m;
	m = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ColMap));
	m->relid = RelationGetRelid(rel);
	for (int i = 0; i < N_COLS; i++)
	{
		m->attnum[i] = 0;
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), col_names[i]) == 0)
				m->attnum[i] = att->attnum;
		}
		if (m->attnum[i] == 0)
			elog(ERROR, "auditdb: column %s missing from %s", col_names[i], RelationGetRelationName(rel));
	}
	fcinfo->flinfo->fn_extra = m;
	return m;
}

Datum
audit_log_before_insert_c(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	ColMap	   *m;
	TupleDesc	desc;
	Datum		v[N_COLS];
	bool		n[N_COLS];
	Datum	   *all_v;
	bool	   *all_n;
	const char *st;
	char	   *f[4];
	char	   *details_text;
	int16		chain;
	int64		seq;
	uint8		prev[32], seed[32], salt_full[32], commitment[32], row_hash[32], chain_hash[32];
	uint8		seed_seq[40];
	uint64		seq_be;
	TimestampTz recorded_at;
	StringInfoData b;
	char		hash_hex[65];
	bytea	   *salt_b, *commitment_b;
	int			cols[7];
	Datum		newvals[7];
	bool		newnulls[7] = {false, false, false, false, false, false, false};
	HeapTuple	result;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		elog(ERROR, "audit_log_before_insert_c: must be a BEFORE INSERT FOR EACH ROW trigger");

	m = colmap_for(fcinfo, td->tg_relation);
	desc = RelationGetDescr(td->tg_relation);
	all_v = palloc(desc->natts * sizeof(Datum));
	all_n = palloc(desc->natts * sizeof(bool));
	heap_deform_tuple(td->tg_trigtuple, desc, all_v, all_n);
	for (int i = 0; i < N_COLS; i++)
	{
		v[i] = all_v[m->attnum[i] - 1];
		n[i] = all_n[m->attnum[i] - 1];
	}

	details_text = validate(v, n);

	st = GetConfigOption("auditdb.chain_state", true, false);
	if (st == NULL || st[0] == '\0')
	{
		if (!OidIsValid(chain_acquire_oid))
			chain_acquire_oid = LookupFuncName(list_make2(makeString("audit"), makeString("chain_acquire_c")),
											   0, NULL, false);
		st = TextDatumGetCString(OidFunctionCall0(chain_acquire_oid));
	}
	parse_state(st, f);
	chain = (int16) pg_strtoint32(f[0]);
	seq = pg_strtoint64(f[1]) + 1;
	hex_decode_fixed(f[2], prev, 32);
	hex_decode_fixed(f[3], seed, 32);

	if (n[C_ID])
	{
		if (!OidIsValid(id_sequence_oid))
			id_sequence_oid = get_relname_relid("audit_log_id_seq", get_namespace_oid("audit", false));
		v[C_ID] = Int64GetDatum(nextval_internal(id_sequence_oid, false));
	}
	recorded_at = GetCurrentTimestamp();

	/* salt = SHA-256(seed || int8send(chain_seq))[0:16] */
	memcpy(seed_seq, seed, 32);
	seq_be = pg_hton64((uint64) seq);
	memcpy(seed_seq + 32, &seq_be, 8);
	sha256_parts(seed_seq, 40, NULL, 0, salt_full);

	/* pii_commitment = SHA-256(salt || J('auditdb/pii/v1', ...)) */
	initStringInfo(&b);
	appendStringInfoString(&b, "[\"auditdb/pii/v1\"");
	j_text(&b, v, n, C_PRINCIPAL_ID);
	j_text(&b, v, n, C_TARGET_RESOURCE_ID);
	j_sep(&b);
	if (n[C_SOURCE_IP])
		appendStringInfoString(&b, "null");
	else
	{
		char	   *ip = DatumGetCString(DirectFunctionCall1(inet_out, v[C_SOURCE_IP]));

		append_json_string(&b, ip, strlen(ip));
	}
	j_text(&b, v, n, C_OUTCOME_DESCRIPTION);
	j_sep(&b);
	appendStringInfoString(&b, details_text != NULL ? details_text : "null");
	appendStringInfoChar(&b, ']');
	sha256_parts(salt_full, 16, (uint8 *) b.data, b.len, commitment);

	/* row_hash = SHA-256(J('auditdb/row/v1', core...) || pii_commitment) */
	resetStringInfo(&b);
	appendStringInfoString(&b, "[\"auditdb/row/v1\"");
	j_int(&b, DatumGetInt64(v[C_ID]));
	j_int(&b, chain);
	j_int(&b, seq);
	j_int(&b, DatumGetTimestampTz(v[C_TIMESTAMP]) + UNIX_EPOCH_OFFSET_US);
	j_int(&b, recorded_at + UNIX_EPOCH_OFFSET_US);
	j_text(&b, v, n, C_ACTION);
	j_text(&b, v, n, C_STATUS);
	j_text(&b, v, n, C_PRINCIPAL_TYPE);
	j_text(&b, v, n, C_ORGANIZATION_ID);
	j_text(&b, v, n, C_TARGET_RESOURCE_TYPE);
	j_text(&b, v, n, C_EVENT_VERSION);
	j_text(&b, v, n, C_CORRELATION_ID);
	j_text(&b, v, n, C_DATA_CLASSIFICATION);
	j_text(&b, v, n, C_RETENTION_POLICY);
	if (n[C_PROCESSING_LATENCY])
	{
		j_sep(&b);
		appendStringInfoString(&b, "null");
	}
	else
		j_int(&b, DatumGetInt32(v[C_PROCESSING_LATENCY]));
	j_text(&b, v, n, C_TTL);
	appendStringInfoChar(&b, ']');
	appendBinaryStringInfo(&b, (const char *) commitment, 32);
	sha256_parts((uint8 *) b.data, b.len, NULL, 0, row_hash);

	/* hash(c, n) = SHA-256(hash(c, n-1) || row_hash) */
	sha256_parts(prev, 32, row_hash, 32, chain_hash);
	hex_encode_into(chain_hash, 32, hash_hex);

	salt_b = palloc(VARHDRSZ + 16);
	SET_VARSIZE(salt_b, VARHDRSZ + 16);
	memcpy(VARDATA(salt_b), salt_full, 16);
	commitment_b = palloc(VARHDRSZ + 32);
	SET_VARSIZE(commitment_b, VARHDRSZ + 32);
	memcpy(VARDATA(commitment_b), commitment, 32);

	cols[0] = m->attnum[C_ID];
	newvals[0] = v[C_ID];
	cols[1] = m->attnum[C_CHAIN_ID];
	newvals[1] = Int16GetDatum(chain);
	cols[2] = m->attnum[C_CHAIN_SEQ];
	newvals[2] = Int64GetDatum(seq);
	cols[3] = m->attnum[C_RECORDED_AT];
	newvals[3] = TimestampTzGetDatum(recorded_at);
	cols[4] = m->attnum[C_PII_SALT];
	newvals[4] = PointerGetDatum(salt_b);
	cols[5] = m->attnum[C_PII_COMMITMENT];
	newvals[5] = PointerGetDatum(commitment_b);
	cols[6] = m->attnum[C_HASH];
	newvals[6] = CStringGetTextDatum(hash_hex);
	result = heap_modify_tuple_by_cols(td->tg_trigtuple, desc, 7, cols, newvals, newnulls);

	resetStringInfo(&b);
	appendStringInfo(&b, "%d/" INT64_FORMAT "/%s/%s", chain, seq, hash_hex, f[3]);
	(void) set_config_option("auditdb.chain_state", b.data,
							 superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	return PointerGetDatum(result);
}

/*
 * audit.chain_acquire_c(): audit.chain_acquire() for READ COMMITTED, in C.
 * SECURITY DEFINER like the PL/pgSQL one (writers may not read chain_heads);
 * every name in its SQL is schema-qualified, operators included, so the
 * caller's search_path cannot redirect anything. Under REPEATABLE READ and
 * SERIALIZABLE it hands over to audit.chain_acquire(), whose retry on a
 * serialization failure needs subtransactions.
 *
 * Same protocol: a transaction-scoped advisory lock on a free chain,
 * starting from the backend pid, then the head read with a fresh snapshot.
 * Returns "chain/seq/head/seed".
 */
Datum
chain_acquire_c(PG_FUNCTION_ARGS)
{
	int			start, c = -1;
	int64		seq;
	bytea	   *head;
	uint8		seed[32];
	char		head_hex[65], seed_hex[65];
	bool		isnull;
	Datum		arg;
	StringInfoData out;

	if (XactIsoLevel != XACT_READ_COMMITTED)
		PG_RETURN_DATUM(OidFunctionCall0(LookupFuncName(list_make2(makeString("audit"), makeString("chain_acquire")),
														 0, NULL, false)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "auditdb: SPI_connect failed");
	if (chain_count == 0)
	{
		if (SPI_execute("SELECT s.value::pg_catalog.int4 FROM audit.settings s WHERE s.key OPERATOR(pg_catalog.=) 'chain_count'",
						true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "auditdb: audit.settings has no chain_count");
		chain_count = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (read_head_plan == NULL)
	{
		Oid			argtypes[1] = {INT2OID};

		read_head_plan = SPI_prepare("SELECT h.head_seq, h.head_hash FROM audit.chain_heads h "
									 "WHERE h.chain_id OPERATOR(pg_catalog.=) $1", 1, argtypes);
		if (read_head_plan == NULL || SPI_keepplan(read_head_plan) != 0)
			elog(ERROR, "auditdb: cannot prepare the chain head query");
	}

	start = MyProcPid % chain_count;
	for (int i = 0; i < chain_count && c < 0; i++)
	{
		int			cand = (start + i) % chain_count;

		if (DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4,
											 Int32GetDatum(CHAIN_LOCK_NAMESPACE), Int32GetDatum(cand))))
			c = cand;
	}
	if (c < 0)
	{
		/* more writers than chains: queue behind one */
		c = start;
		DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(CHAIN_LOCK_NAMESPACE), Int32GetDatum(c));
	}

	/* read-write execution takes a fresh snapshot: the head as committed */
	arg = Int16GetDatum((int16) c);
	if (SPI_execute_plan(read_head_plan, &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("auditdb: chain %d has no row in audit.chain_heads", c),
				 errhint("audit.settings.chain_count must match the rows of audit.chain_heads.")));
	seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	head = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (VARSIZE_ANY_EXHDR(head) != 32)
		elog(ERROR, "auditdb: chain %d: head_hash is not 32 bytes", c);
	hex_encode_into((const uint8 *) VARDATA_ANY(head), 32, head_hex);
	if (!pg_strong_random(seed, sizeof(seed)))
		elog(ERROR, "auditdb: no strong random bytes");
	hex_encode_into(seed, 32, seed_hex);
	SPI_finish();

	initStringInfo(&out);
	appendStringInfo(&out, "%d/" INT64_FORMAT "/%s/%s", c, seq, head_hex, seed_hex);
	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}

/*
 * AFTER INSERT, FOR EACH STATEMENT: audit.audit_log_flush_chain_head() in C.
 * SECURITY DEFINER, qualified names, as above.
 */
Datum
audit_log_flush_chain_head_c(PG_FUNCTION_ARGS)
{
	const char *st;
	char	   *f[4];
	Datum		args[3];
	bytea	   *head;
	uint8		raw[32];

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "audit_log_flush_chain_head_c: must be a trigger");
	st = GetConfigOption("auditdb.chain_state", true, false);
	if (st == NULL || st[0] == '\0')
		return PointerGetDatum(NULL);

	parse_state(st, f);
	hex_decode_fixed(f[2], raw, 32);
	head = palloc(VARHDRSZ + 32);
	SET_VARSIZE(head, VARHDRSZ + 32);
	memcpy(VARDATA(head), raw, 32);
	args[0] = Int16GetDatum((int16) pg_strtoint32(f[0]));
	args[1] = Int64GetDatum(pg_strtoint64(f[1]));
	args[2] = PointerGetDatum(head);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "auditdb: SPI_connect failed");
	if (flush_plan == NULL)
	{
		Oid			argtypes[3] = {INT2OID, INT8OID, BYTEAOID};

		flush_plan = SPI_prepare("UPDATE audit.chain_heads h SET head_seq = $2, head_hash = $3, "
								 "updated_at = pg_catalog.statement_timestamp() "
								 "WHERE h.chain_id OPERATOR(pg_catalog.=) $1 AND h.head_seq OPERATOR(pg_catalog.<) $2",
								 3, argtypes);
		if (flush_plan == NULL || SPI_keepplan(flush_plan) != 0)
			elog(ERROR, "auditdb: cannot prepare the chain head update");
	}
	if (SPI_execute_plan(flush_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "auditdb: chain head update failed");
	SPI_finish();
	return PointerGetDatum(NULL);
}
