/*
 * auditdb_accel: the insert trigger of INTEGRITY.md v1 in C.
 *
 * An optional accelerator for servers that can load C code (not managed
 * PostgreSQL services). It does exactly what audit.audit_log_before_insert()
 * does in PL/pgSQL, byte for byte, at a fraction of the cost per row:
 * validation with the same messages, chain acquisition through the same
 * audit.chain_acquire(), the same salt derivation, encoding and hashes.
 * audit.use_accelerator(true) switches the trigger to it; the PL/pgSQL
 * function stays installed and is the reference.
 *
 * The one difference is where the transaction's chain state lives: here in
 * backend memory, which no SQL can touch, saved at every subtransaction start
 * and restored when it aborts (so rolled-back savepoints leave no trace), and
 * forgotten at commit or abort. The PL/pgSQL trigger keeps it in a tagged
 * setting instead. When that setting is non-empty (the PL/pgSQL trigger ran
 * in this transaction, or a client wrote it), the state in memory may be
 * stale: it is then taken afresh from audit.chain_acquire(), which finds the
 * chain the transaction holds and its newest row, and the setting cleared.
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
#include "access/transam.h"
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
#include "utils/memutils.h"
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
PG_FUNCTION_INFO_V1(audit_log_flush_chain_head_c);

void		_PG_init(void);

/* microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01 */
#define UNIX_EPOCH_OFFSET_US INT64CONST(946684800000000)

enum
{
	C_ID, C_CHAIN_ID, C_CHAIN_SEQ, C_TIMESTAMP, C_RECORDED_AT, C_ACTION, C_STATUS,
	C_PRINCIPAL_TYPE, C_ORGANIZATION_ID, C_TARGET_RESOURCE_TYPE, C_EVENT_VERSION,
	C_CORRELATION_ID, C_DATA_CLASSIFICATION, C_RETENTION_POLICY, C_PROCESSING_LATENCY,
	C_TTL, C_PRINCIPAL_ID, C_TARGET_RESOURCE_ID, C_SOURCE_IP, C_OUTCOME_DESCRIPTION,
	C_DETAILS, C_PII_SALT, C_PII_COMMITMENT, C_HASH, C_HASH_ALGORITHM, C_HASH_VERSION,
	C_ARCHIVED_AT, N_COLS
};

static const char *const col_names[N_COLS] = {
	"id", "chain_id", "chain_seq", "timestamp", "recorded_at", "action", "status",
	"principal_type", "organization_id", "target_resource_type", "event_version",
	"correlation_id", "data_classification", "retention_policy", "processing_latency",
	"ttl", "principal_id", "target_resource_id", "source_ip", "outcome_description",
	"details", "pii_salt", "pii_commitment", "hash", "hash_algorithm", "hash_version",
	"archived_at"
};

/* Column numbers of one relation, cached in the trigger's fn_extra. */
typedef struct ColMap
{
	Oid			relid;
	int			attnum[N_COLS];
} ColMap;

static Oid	chain_acquire_oid = InvalidOid;
static Oid	id_sequence_oid = InvalidOid;
static SPIPlanPtr flush_plan = NULL;

/*
 * The accepted range of "timestamp", [1900-01-01, 10000-01-01) UTC, in
 * PostgreSQL's microseconds since 2000-01-01: audit.reject_invalid_event's.
 */
#define TS_MIN INT64CONST(-3155673600000000)
#define TS_END INT64CONST(252455616000000000)

/* The transaction's chain position, in backend memory (see the top). */
typedef struct ChainState
{
	bool		valid;
	FullTransactionId xact;		/* the top-level transaction it belongs to */
	int16		chain;
	int64		seq;
	uint8		hash[32];
	uint8		secret[32];
} ChainState;

static ChainState chain_state;

/* Saved at each subtransaction start, restored if it aborts. */
typedef struct SavedState
{
	SubTransactionId subid;
	ChainState	state;
} SavedState;

static SavedState *saved = NULL;
static int	saved_len = 0;
static int	saved_cap = 0;

static void
chain_state_subxact(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			if (saved_len == saved_cap)
			{
				saved_cap = saved_cap == 0 ? 8 : saved_cap * 2;
				saved = saved == NULL
					? MemoryContextAlloc(TopMemoryContext, saved_cap * sizeof(SavedState))
					: repalloc(saved, saved_cap * sizeof(SavedState));
			}
			saved[saved_len].subid = mySubid;
			saved[saved_len].state = chain_state;
			saved_len++;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
		case SUBXACT_EVENT_ABORT_SUB:
			/* subtransactions end innermost first; pop down to this one */
			while (saved_len > 0)
			{
				SavedState *top = &saved[--saved_len];

				if (top->subid == mySubid)
				{
					if (event == SUBXACT_EVENT_ABORT_SUB)
						chain_state = top->state;
					break;
				}
			}
			break;
		default:
			break;
	}
}

static void
chain_state_xact(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			chain_state.valid = false;
			saved_len = 0;
			break;
		default:
			break;
	}
}

void
_PG_init(void)
{
	RegisterXactCallback(chain_state_xact, NULL);
	RegisterSubXactCallback(chain_state_subxact, NULL);
}

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
		elog(ERROR, "auditdb: malformed chain state");
}

/* Lowercase hex of n bytes into out, NUL-terminated (PostgreSQL's hex_encode). */
static void
hex_encode_into(const uint8 *in, int n, char *out)
{
	out[hex_encode((const char *) in, n, out)] = '\0';
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

	/* data_classification, retention_policy, event_version: defaults first */
	static const int required[] = {C_TIMESTAMP, C_ACTION, C_STATUS};
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
	if (DatumGetTimestampTz(v[C_TIMESTAMP]) < TS_MIN || DatumGetTimestampTz(v[C_TIMESTAMP]) >= TS_END)
		reject("timestamp", ERRCODE_DATETIME_FIELD_OVERFLOW, "must be from 1900-01-01 to 9999-12-31 (UTC)");
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
	if (!n[C_ARCHIVED_AT])
		reject("archived_at", ERRCODE_INSUFFICIENT_PRIVILEGE, "is set by maintenance only, not on insert");
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

/*
 * Loads chain_state from audit.chain_acquire() (SECURITY DEFINER, called
 * directly: no EXECUTE grant is needed and none is given), which returns
 * "chain/seq/head/secret" for the chain this transaction holds or takes, and
 * clears auditdb.chain_state (see the top of the file).
 */
static void
chain_state_acquire(void)
{
	char	   *st;
	char	   *f[4];

	if (!OidIsValid(chain_acquire_oid))
		chain_acquire_oid = LookupFuncName(list_make2(makeString("audit"), makeString("chain_acquire")),
										   0, NULL, false);
	st = TextDatumGetCString(OidFunctionCall0(chain_acquire_oid));
	f[0] = st;
	for (int i = 1; i < 4; i++)
	{
		f[i] = strchr(f[i - 1], '/');
		if (f[i] == NULL)
			elog(ERROR, "auditdb: audit.chain_acquire() returned a malformed state");
		*f[i]++ = '\0';
	}
	chain_state.valid = false;
	chain_state.chain = (int16) pg_strtoint32(f[0]);
	chain_state.seq = pg_strtoint64(f[1]);
	hex_decode_fixed(f[2], chain_state.hash, 32);
	hex_decode_fixed(f[3], chain_state.secret, 32);
	chain_state.xact = GetTopFullTransactionId();
	chain_state.valid = true;
	(void) set_config_option("auditdb.chain_state", "",
							 superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
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
	int			cols[12];
	Datum		newvals[12];
	bool		newnulls[12] = {false};
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

	/* an explicit NULL takes the column's default, as in PL/pgSQL */
	if (n[C_EVENT_VERSION])
		v[C_EVENT_VERSION] = CStringGetTextDatum("1.0"), n[C_EVENT_VERSION] = false;
	if (n[C_DATA_CLASSIFICATION])
		v[C_DATA_CLASSIFICATION] = CStringGetTextDatum("INTERNAL"), n[C_DATA_CLASSIFICATION] = false;
	if (n[C_RETENTION_POLICY])
		v[C_RETENTION_POLICY] = CStringGetTextDatum("standard"), n[C_RETENTION_POLICY] = false;

	details_text = validate(v, n);

	st = GetConfigOption("auditdb.chain_state", true, false);
	if (!chain_state.valid ||
		!FullTransactionIdEquals(chain_state.xact, GetTopFullTransactionId()) ||
		(st != NULL && st[0] != '\0'))
		chain_state_acquire();
	if (chain_state.seq == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("auditdb: chain %d is full", chain_state.chain)));
	chain = chain_state.chain;
	seq = chain_state.seq + 1;
	memcpy(prev, chain_state.hash, 32);
	memcpy(seed, chain_state.secret, 32);

	if (!OidIsValid(id_sequence_oid))
		id_sequence_oid = get_relname_relid("audit_log_id_seq", get_namespace_oid("audit", false));
	v[C_ID] = Int64GetDatum(nextval_internal(id_sequence_oid, false));
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
	cols[7] = m->attnum[C_EVENT_VERSION];
	newvals[7] = v[C_EVENT_VERSION];
	cols[8] = m->attnum[C_DATA_CLASSIFICATION];
	newvals[8] = v[C_DATA_CLASSIFICATION];
	cols[9] = m->attnum[C_RETENTION_POLICY];
	newvals[9] = v[C_RETENTION_POLICY];
	cols[10] = m->attnum[C_HASH_ALGORITHM];
	newvals[10] = CStringGetTextDatum("SHA-256");
	cols[11] = m->attnum[C_HASH_VERSION];
	newvals[11] = Int16GetDatum(1);
	result = heap_modify_tuple_by_cols(td->tg_trigtuple, desc, 12, cols, newvals, newnulls);

	chain_state.seq = seq;
	memcpy(chain_state.hash, chain_hash, 32);
	return PointerGetDatum(result);
}

/*
 * AFTER INSERT, FOR EACH STATEMENT: writes the head in backend memory back to
 * audit.chain_heads (SECURITY DEFINER; qualified names, so the caller's
 * search_path cannot redirect anything). Memory no SQL can touch, so unlike
 * the PL/pgSQL flush there is nothing to verify.
 */
Datum
audit_log_flush_chain_head_c(PG_FUNCTION_ARGS)
{
	Datum		args[3];
	bytea	   *head;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "audit_log_flush_chain_head_c: must be a trigger");
	if (!chain_state.valid ||
		!FullTransactionIdEquals(chain_state.xact, GetTopFullTransactionIdIfAny()))
		return PointerGetDatum(NULL);

	head = palloc(VARHDRSZ + 32);
	SET_VARSIZE(head, VARHDRSZ + 32);
	memcpy(VARDATA(head), chain_state.hash, 32);
	args[0] = Int16GetDatum(chain_state.chain);
	args[1] = Int64GetDatum(chain_state.seq);
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
