/*
 * execution_context.c
 *	  The ExecutionContext of the running attempt: entering and leaving it
 *	  (with the reset of session state between attempts), the executor's
 *	  session that it runs in, and the SQL functions that read it,
 *	  context() and current_job_id().
 *
 * An executor serves one owner in its lifetime (docs/architecture.md,
 * "7. Security model").  It starts unbound; its first claimed job binds it
 * to that job's owner, who becomes its session user.  It ends ("retires")
 * instead of running a job of another owner, and after an attempt during
 * which a shared library was loaded: another extension's session state
 * (a dblink connection, say) cannot be reset from here, so it must not
 * outlive the attempt that made it.  The supervisor starts a fresh
 * executor in its place at once.
 *
 * Between the attempts of one owner, what a handler can leave in the
 * backend is undone: in the attempt's transaction, as the owner
 * (je_close_attempt_xact_state), and in the session afterwards
 * (je_reset_session_state).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/be-fsstubs.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "execution_context.h"
#include "shmem.h"

ExecutionContext je_current_context;

/* The executor's session. */
static Oid	session_owner = InvalidOid;	/* invalid: not bound yet */
static const char *retire_reason = NULL;	/* set: the process ends after its work */

/* What the current attempt did that its successors must not inherit. */
static uint64 objects_at_attempt_start;
static bool attempt_ran_load;	/* LOAD (the only load noticed without dl_iterate_phdr) */
static bool attempt_set_constraints;	/* SET CONSTRAINTS: lasts for the transaction */

static ProcessUtility_hook_type prev_process_utility = NULL;

/* The settings before the connection applied the bootstrap superuser's own. */
typedef struct SavedSetting
{
	const char *name;
	char	   *value;			/* NULL: not set */
} SavedSetting;

static MemoryContext saved_settings_cxt = NULL;
static SavedSetting *saved_settings = NULL;
static int	nsaved_settings = 0;

/*
 * Keeps every setting as it is before the executor connects to its
 * database: the connection then applies the pg_db_role_setting entries of
 * the bootstrap superuser it connects as, which je_session_start undoes.
 */
void
je_session_before_connect(void)
{
	int			n;
	struct config_generic **vars = je_guc_variables(&n);
	MemoryContext old;

	saved_settings_cxt = AllocSetContextCreate(TopMemoryContext, "job_engine settings before connect",
											   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(saved_settings_cxt);
	saved_settings = palloc(sizeof(SavedSetting) * n);
	for (int i = 0; i < n; i++)
	{
		const char *value = GetConfigOption(vars[i]->name, true, false);

		saved_settings[i].name = pstrdup(vars[i]->name);
		saved_settings[i].value = value ? pstrdup(value) : NULL;
	}
	nsaved_settings = n;
	MemoryContextSwitchTo(old);
}

/* The text[] of pg_db_role_setting for (database, role), or NULL. */
static ArrayType *
role_setting_array(Relation rel, Snapshot snapshot, Oid database, Oid role)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	ArrayType  *result = NULL;

	ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(database));
	ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(role));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, snapshot, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			result = DatumGetArrayTypePCopy(d);
	}
	systable_endscan(scan);
	return result;
}

/* The "name=value" entries of a setconfig array (none for NULL). */
static int
setting_entries(ArrayType *a, Datum **entries)
{
	bool	   *nulls;
	int			n = 0;

	if (a == NULL)
		return 0;
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, entries, &nulls, &n);
	return n;
}

/* The value an entry of `a` gives `name`, or NULL. */
static char *
setting_in(ArrayType *a, const char *name)
{
	Datum	   *entries;
	int			n = setting_entries(a, &entries);
	char	   *result = NULL;

	for (int i = 0; i < n; i++)
	{
		char	   *entry_name;
		char	   *value;

		ParseLongOption(TextDatumGetCString(entries[i]), &entry_name, &value);
		if (value != NULL && pg_strcasecmp(entry_name, name) == 0)
			result = value;
	}
	return result;
}

static const char *
saved_setting(const char *name)
{
	for (int i = 0; i < nsaved_settings; i++)
		if (pg_strcasecmp(saved_settings[i].name, name) == 0)
			return saved_settings[i].value ? saved_settings[i].value : "";
	return "";					/* a placeholder the connection created */
}

/*
 * Undoes, as the executor's session defaults, the ALTER ROLE ... SET
 * settings of the bootstrap superuser that the connection applied: what
 * the session would have without them (the database's, then every role's,
 * then the configuration file's).  A job of that superuser gets them back
 * with its other role settings (je_apply_role_settings), like any owner.
 */
static void
forget_bootstrap_role_settings(void)
{
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetCatalogSnapshot(DbRoleSettingRelationId));
	ArrayType  *own[2];
	ArrayType  *database = role_setting_array(rel, snapshot, MyDatabaseId, InvalidOid);
	ArrayType  *everyone = role_setting_array(rel, snapshot, InvalidOid, InvalidOid);

	own[0] = role_setting_array(rel, snapshot, MyDatabaseId, BOOTSTRAP_SUPERUSERID);
	own[1] = role_setting_array(rel, snapshot, InvalidOid, BOOTSTRAP_SUPERUSERID);
	for (int k = 0; k < 2; k++)
	{
		Datum	   *entries;
		int			n = setting_entries(own[k], &entries);

		for (int i = 0; i < n; i++)
		{
			char	   *name;
			char	   *value;
			const char *before;

			ParseLongOption(TextDatumGetCString(entries[i]), &name, &value);
			if (value == NULL)
				continue;
			before = setting_in(database, name);
			if (before == NULL)
				before = setting_in(everyone, name);
			if (before == NULL)
				before = saved_setting(name);
			/* The role level the connection used, so that RESET comes back here too. */
			(void) set_config_option(name, before, PGC_SUSET, PGC_S_DATABASE_USER,
									 GUC_ACTION_SET, true, WARNING, false);
		}
	}
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
}

/*
 * Notes, while an attempt runs, the utility commands whose effect outlives
 * it in ways this file cannot undo: LOAD (a library) and SET CONSTRAINTS
 * (the constraint mode of the rest of the transaction, which a group's
 * next attempt would share).
 */
static void
note_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (je_current_context.active)
	{
		if (IsA(pstmt->utilityStmt, LoadStmt))
			attempt_ran_load = true;
		else if (IsA(pstmt->utilityStmt, ConstraintsSetStmt))
			attempt_set_constraints = true;
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/*
 * Sets up the executor's session once connected, before its first claim:
 * the bootstrap superuser's role settings undone, PL/pgSQL loaded (the
 * engine's own functions and most handlers use it, and a library loaded
 * during an attempt ends the process), the utility hook installed.
 */
void
je_session_start(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	forget_bootstrap_role_settings();
	CommitTransactionCommand();
	MemoryContextDelete(saved_settings_cxt);
	saved_settings_cxt = NULL;
	saved_settings = NULL;
	nsaved_settings = 0;

	load_file("$libdir/plpgsql", false);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = note_utility;
	objects_at_attempt_start = je_loaded_objects();
}

/*
 * Shows `owner` as this executor's user in pg_stat_activity (usename),
 * which the connection set to the bootstrap superuser: the executor serves
 * that owner from now on.  The entry is written as the statistics
 * machinery writes it, inside the st_changecount protocol, so a reader
 * never sees it half-written.  Only the view changes: who may signal the
 * executor is decided by its PGPROC, which keeps the connection's role.
 */
static void
report_session_user(Oid owner)
{
	volatile PgBackendStatus *beentry = MyBEEntry;

	if (beentry == NULL)
		return;
	PGSTAT_BEGIN_WRITE_ACTIVITY(beentry);
	beentry->st_userid = owner;
	PGSTAT_END_WRITE_ACTIVITY(beentry);
}

/*
 * Whether this executor may run jobs of `owner`, binding it to `owner` if
 * it serves nobody yet; called in the claim's transaction.  If it serves
 * another owner it retires: the caller rolls the claim back and the job
 * waits for a fresh executor.
 *
 * Binding makes the owner the session user, as a session of its own would
 * have it (session_user in a job is its owner), then goes back to the
 * bootstrap superuser for the engine's own work: the handler runs as the
 * owner in a local user-id change (attempt.c), which refuses SET ROLE and
 * SET SESSION AUTHORIZATION, so no handler can become anyone else.
 */
bool
je_session_take(Oid owner)
{
	Oid			save_userid;
	int			save_sec_context;

	if (OidIsValid(session_owner))
	{
		if (owner == session_owner)
			return true;
		retire_reason = "a job of another owner is next";
		return false;
	}
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetSessionAuthorization(owner, superuser_arg(owner));
	SetUserIdAndSecContext(save_userid, save_sec_context);
	session_owner = owner;
	report_session_user(owner);
	return true;
}

/*
 * Whether this executor must end after the work in hand: it refused
 * another owner's job, or the last attempt loaded a shared library.
 */
bool
je_session_retiring(void)
{
	if (retire_reason == NULL &&
		(attempt_ran_load || je_loaded_objects() != objects_at_attempt_start))
		retire_reason = "an attempt loaded a shared library";
	return retire_reason != NULL;
}

const char *
je_session_retire_reason(void)
{
	return retire_reason;
}

/* Marks the attempt as started: shared memory, context(), deadline. */
void
je_begin_attempt(ExecutionContext *job)
{
	je_executor_set_state(EXECUTOR_BUSY, job->job_id, job->attempt, job->owner);
	job->active = true;
	job->deadline = job->timeout_ms > 0
		? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), job->timeout_ms) : 0;
	attempt_ran_load = false;
	attempt_set_constraints = false;
	objects_at_attempt_start = je_loaded_objects();
	je_current_context = *job;
}

/*
 * Whether the attempt just run left in the transaction or the process
 * what the next attempt of its group would inherit: the group ends there
 * (group_commit.c).
 */
bool
je_attempt_ends_group(void)
{
	return attempt_set_constraints || je_session_retiring();
}

/* Applies one setconfig array at the session level, in the current GUC nest level. */
static void
apply_settings(ArrayType *a)
{
	Datum	   *entries;
	int			n = setting_entries(a, &entries);

	for (int i = 0; i < n; i++)
	{
		char	   *name;
		char	   *value;

		ParseLongOption(TextDatumGetCString(entries[i]), &name, &value);
		if (value == NULL)
			continue;
		/* PGC_SUSET: the right to store it was checked by ALTER ROLE. */
		(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, WARNING, false);
	}
}

/*
 * The owner's role settings as read by the transaction's first attempt:
 * a group's attempts (one owner, one transaction) share one read of
 * pg_db_role_setting, which has no syscache.  Kept in
 * TopTransactionContext and forgotten when it is reset, so that the next
 * transaction reads them again.
 */
typedef struct RoleSettings
{
	Oid			owner;
	ArrayType  *all_databases;	/* ALTER ROLE ... SET, or NULL */
	ArrayType  *this_database;	/* ALTER ROLE ... IN DATABASE ... SET, or NULL */
} RoleSettings;

static RoleSettings *xact_role_settings = NULL;

static void
forget_role_settings(void *arg)
{
	xact_role_settings = NULL;
}

static RoleSettings *
read_role_settings(Oid owner)
{
	MemoryContext old;
	MemoryContextCallback *forget;
	Relation	rel;
	Snapshot	snapshot;
	RoleSettings *rs;

	if (xact_role_settings != NULL && xact_role_settings->owner == owner)
		return xact_role_settings;
	old = MemoryContextSwitchTo(TopTransactionContext);
	rs = palloc(sizeof(RoleSettings));
	rs->owner = owner;
	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	snapshot = RegisterSnapshot(GetCatalogSnapshot(DbRoleSettingRelationId));
	rs->all_databases = role_setting_array(rel, snapshot, InvalidOid, owner);
	rs->this_database = role_setting_array(rel, snapshot, MyDatabaseId, owner);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	if (xact_role_settings == NULL)
	{
		forget = palloc(sizeof(MemoryContextCallback));
		forget->func = forget_role_settings;
		forget->arg = NULL;
		MemoryContextRegisterResetCallback(TopTransactionContext, forget);
	}
	MemoryContextSwitchTo(old);
	xact_role_settings = rs;
	return rs;
}

/*
 * Applies what `owner` would get on login to this database from ALTER ROLE
 * ... SET: all databases first, then this one, which wins; the handler
 * function's own SET clauses, applied when it is called, win over both.
 * Called in the attempt's GUC nest level, as the owner, so that all of it
 * is undone with the attempt.  The session level, unlike the role levels a
 * login uses, is what a nest level can undo; an entry that is no longer
 * valid is skipped with a WARNING, as at login.  The settings are those
 * the transaction read first (read_role_settings), as a login reads them
 * once.
 */
void
je_apply_role_settings(Oid owner)
{
	RoleSettings *rs = read_role_settings(owner);

	apply_settings(rs->all_databases);
	apply_settings(rs->this_database);
}

/*
 * Closes, at the end of a handler that succeeded and while still its
 * owner, what the handler left in the attempt's transaction that would
 * outlive it: deferred triggers fire now, as the owner (not at COMMIT, when
 * the engine is the bootstrap superuser again; a group fires them at its
 * end, je_fire_deferred_triggers_as); cursors are closed, WITH HOLD ones
 * included (closing one may run its code); large-object descriptors closed;
 * LISTEN undone; temporary objects dropped.  A handler that fails has all of
 * that rolled back with its (sub)transaction.
 */
void
je_close_attempt_xact_state(void)
{
	/* Deferred events cannot be fired and freed safely inside a subtransaction. */
	if (!IsSubTransaction())
		AfterTriggerFireDeferred();
	PortalHashTableDeleteAll();
	AtEOXact_LargeObject(true);
	Async_UnlistenAll();
	ResetTempTableNamespace();
}

/*
 * Becomes `owner` for code run on its behalf (a handler, a group's deferred
 * triggers): a GUC nest level of its own, the owner as current user, and
 * the owner's role settings in that level.  je_end_owner() undoes it on
 * success; on error, the (sub)transaction's abort does.
 */
void
je_become_owner(Oid owner, OwnerScope *scope)
{
	scope->save_nestlevel = NewGUCNestLevel();
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	je_apply_role_settings(owner);
}

void
je_end_owner(OwnerScope *scope)
{
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
	AtEOXact_GUC(false, scope->save_nestlevel);
}

/*
 * Fires the deferred triggers of a group's attempts as their owner (a group
 * has one), with the owner's role settings as its attempts had them,
 * before the engine records their outcomes and commits.
 */
void
je_fire_deferred_triggers_as(Oid owner)
{
	OwnerScope	scope;

	je_become_owner(owner, &scope);
	AfterTriggerFireDeferred();
	je_end_owner(&scope);
}

/* random() draws what no attempt can predict: seeded from a strong source. */
static void
reseed_random(void)
{
	uint64		bits;

	if (!pg_strong_random(&bits, sizeof(bits)))
		bits = (uint64) GetCurrentTimestamp() ^ ((uint64) MyProcPid << 32);
	/* 53 random bits, spread over setseed()'s range [-1, 1). */
	(void) DirectFunctionCall1(setseed,
							   Float8GetDatum((double) (bits >> 11) / (double) (UINT64CONST(1) << 52) - 1.0));
}

/*
 * Undoes what an attempt may have left in the session outside its
 * transaction: session-level advisory locks, prepared statements, sequence
 * caches (currval, lastval) and the random() seed.  Settings were undone by
 * the GUC nest level, role changes are refused by the local user-id change,
 * and the rest by je_close_attempt_xact_state or the transaction's end.
 */
void
je_reset_session_state(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
	DropAllPreparedStatements();
	ResetSequenceCaches();
	reseed_random();
}

/*
 * Leaves the current attempt's context: nothing of it may reach the next
 * attempt (of a group, say).
 */
void
je_leave_context(void)
{
	je_reset_session_state();
	je_current_context.active = false;
}

/* Undoes je_begin_attempt and whatever the attempt left in the session. */
void
je_end_attempt(ExecutionContext *job)
{
	je_leave_context();
	job->active = false;
	je_executor_set_state(EXECUTOR_IDLE, 0, 0, InvalidOid);
	/* A cancel aimed at the finished attempt must not hit the next one. */
	QueryCancelPending = false;
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
append_json_field(StringInfo buf, const char *key, const char *value, bool quoted)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else if (quoted)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, value);
}

PG_FUNCTION_INFO_V1(job_engine_context);

/* The running attempt's ExecutionContext as jsonb, NULL outside a job. */
Datum
job_engine_context(PG_FUNCTION_ARGS)
{
	ExecutionContext *job = &je_current_context;
	StringInfoData buf;
	char	   *owner;

	if (!job->active)
		PG_RETURN_NULL();

	owner = GetUserNameFromId(job->owner, true);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_json_field(&buf, "job_id", psprintf(INT64_FORMAT, job->job_id), false);
	append_json_field(&buf, "attempt", psprintf("%d", job->attempt), false);
	append_json_field(&buf, "handler", job->handler, true);
	append_json_field(&buf, "queue", job->queue, true);
	append_json_field(&buf, "correlation_id", job->correlation_id, true);
	append_json_field(&buf, "parent_job_id",
					  job->has_parent ? psprintf(INT64_FORMAT, job->parent_job_id) : NULL, false);
	append_json_field(&buf, "event_id",
					  job->has_event ? psprintf(INT64_FORMAT, job->event_id) : NULL, false);
	append_json_field(&buf, "owner", owner, true);
	append_json_field(&buf, "deadline",
					  job->deadline ? timestamptz_to_str(job->deadline) : NULL, true);
	appendStringInfoChar(&buf, '}');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(job_engine_current_job_id);

Datum
job_engine_current_job_id(PG_FUNCTION_ARGS)
{
	if (!je_current_context.active)
		PG_RETURN_NULL();
	PG_RETURN_INT64(je_current_context.job_id);
}
