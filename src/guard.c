/*
 * guard.c
 *	  The lifecycle guard (docs/architecture.md, "2. Lifecycle"): a BEFORE
 *	  ROW trigger on job_engine._jobs that holds for every role, superusers
 *	  included.
 *
 *	  INSERT  the job starts 'created' (COPY, which restores a dump, loads
 *	          jobs in any state; the supervisor recovers running ones);
 *	  DELETE  only a terminal job (succeeded, failed, aborted);
 *	  UPDATE  a terminal job never changes; the state moves only along
 *	          created->running|aborted, running->succeeded|failed|aborted|
 *	          retrying, retrying->running|aborted; a move stamps
 *	          state_changed_at, and started_at (first run) or finished_at.
 *	          Also running->created with attempts from 1 back to 0: the claim
 *	          of a first attempt that never started, undone (claim.c,
 *	          je_unclaim).  And failed|aborted->created|retrying by an
 *	          UPDATE that clears finished_at as well: a retry in place
 *	          (job_engine.retry()), the one way out of a terminal state, so
 *	          that no UPDATE leaves one by accident.
 *
 * Being a trigger, it can be disabled (or dropped, or replaced) by a
 * superuser, and then the rows written meanwhile go unnoted: the claim
 * marks could say a queue has no candidate when it has (its jobs never
 * claimed), the running counts miss ends (the queue full forever) or
 * claims (over the limit).  The library's ProcessUtility hook sees every
 * command that changes the triggers of _jobs (guard_process_utility): at
 * its commit the marks become incomplete and the counts untrusted, and no
 * rebuild restores them before both triggers are enabled ALWAYS again.
 *
 * It fires on every claim and every outcome, so it is C: the states are
 * compared as enum OIDs, looked up once per process.  Seeing every
 * transition, it also counts them for the metrics (metrics.c): jobs
 * ended by state, attempts ended by outcome.  (Not jobs created: a BEFORE
 * INSERT trigger also fires for the row an idempotent submit's ON CONFLICT
 * DO NOTHING then skips; _create_job() counts them.)
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "deferred.h"
#include "dispatch.h"
#include "guard.h"
#include "metrics.h"
#include "running.h"

typedef enum JobState
{
	JS_CREATED,
	JS_RUNNING,
	JS_RETRYING,
	JS_SUCCEEDED,
	JS_FAILED,
	JS_ABORTED,
	JS_NSTATES
} JobState;

static const char *const state_names[JS_NSTATES] = {
	"created", "running", "retrying", "succeeded", "failed", "aborted"
};

/* Per process: the enum OIDs of job_engine.job_state and the columns used. */
static struct
{
	Oid			relid;
	Oid			enum_type;
	Oid			state_oids[JS_NSTATES];
	AttrNumber	id;
	AttrNumber	state;
	AttrNumber	state_changed_at;
	AttrNumber	started_at;
	AttrNumber	finished_at;
	AttrNumber	attempts;
	AttrNumber	owner;
	AttrNumber	queue;
	AttrNumber	priority;
	AttrNumber	run_at;
	AttrNumber	blocked;
	bool		defers;			/* the schema keeps deferred jobs (deferred.c) */
} guard_cache;

static AttrNumber
column(TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		elog(ERROR, "job_engine: column \"%s\" of the jobs table is missing", name);
	return (AttrNumber) attno;
}

/*
 * Any change to _jobs (the update to 1.1 creates jobs_deferred_idx) or to
 * the catalogs makes the cache load again: it is keyed on the relation's
 * OID, which an ALTER keeps.
 */
static void
forget_guard_cache(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == guard_cache.relid)
		guard_cache.relid = InvalidOid;
}

/* Fills guard_cache for this relation; again after DROP and CREATE EXTENSION. */
static void
load_guard_cache(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	state;
	Oid			enum_type;

	static bool callback_registered = false;

	/* Every row of every claim and outcome comes here: the check is O(1). */
	if (guard_cache.relid == RelationGetRelid(rel) &&
		TupleDescAttr(desc, guard_cache.state - 1)->atttypid == guard_cache.enum_type)
		return;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_guard_cache, (Datum) 0);
		callback_registered = true;
	}
	state = column(desc, "state");
	enum_type = TupleDescAttr(desc, state - 1)->atttypid;
	for (int i = 0; i < JS_NSTATES; i++)
	{
		Oid			oid = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
										  ObjectIdGetDatum(enum_type),
										  CStringGetDatum(state_names[i]));

		if (!OidIsValid(oid))
			elog(ERROR, "job_engine: job state \"%s\" is missing", state_names[i]);
		guard_cache.state_oids[i] = oid;
	}
	guard_cache.id = column(desc, "id");
	guard_cache.state = state;
	guard_cache.state_changed_at = column(desc, "state_changed_at");
	guard_cache.started_at = column(desc, "started_at");
	guard_cache.finished_at = column(desc, "finished_at");
	guard_cache.attempts = column(desc, "attempts");
	guard_cache.owner = column(desc, "owner");
	guard_cache.queue = column(desc, "queue");
	guard_cache.priority = column(desc, "priority");
	guard_cache.run_at = column(desc, "run_at");
	guard_cache.blocked = column(desc, "blocked");
	guard_cache.defers = je_deferred_supported();
	guard_cache.enum_type = enum_type;
	guard_cache.relid = RelationGetRelid(rel);
}

static JobState
tuple_state(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Oid			oid = DatumGetObjectId(heap_getattr(tup, guard_cache.state, desc, &isnull));

	for (int i = 0; i < JS_NSTATES; i++)
		if (!isnull && guard_cache.state_oids[i] == oid)
			return (JobState) i;
	elog(ERROR, "job_engine: job row without a known state");
	pg_unreachable();
}

static int64
tuple_id(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, guard_cache.id, desc, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static int32
tuple_attempts(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, guard_cache.attempts, desc, &isnull);

	return isnull ? -1 : DatumGetInt32(d);
}

static bool is_terminal(JobState s);

static Oid
tuple_owner(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, guard_cache.owner, desc, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/*
 * Counts a transition for the metrics (metrics.c), at commit: a job that
 * ended, by its state, with its duration; an attempt that ended (every move
 * out of running but an un-claim), by its outcome: a failure recorded by
 * crash recovery is a crash.
 */
static void
count_transition(JobState from, JobState to, HeapTuple oldtup, TupleDesc desc,
				 TimestampTz now)
{
	Oid			owner = tuple_owner(oldtup, desc);

	if (from == JS_RUNNING)
	{
		JeCounter	outcome = to == JS_SUCCEEDED ? JC_ATTEMPTS_SUCCEEDED
			: to == JS_ABORTED ? JC_ATTEMPTS_ABORTED
			: je_metrics_crash_recording() ? JC_ATTEMPTS_CRASHED
			: JC_ATTEMPTS_FAILED;

		je_metrics_count(owner, outcome, 1);
	}
	if (is_terminal(to))
	{
		bool		isnull;
		Datum		started = heap_getattr(oldtup, guard_cache.started_at, desc, &isnull);

		je_metrics_count_finished(owner,
								  to == JS_SUCCEEDED ? JC_JOBS_SUCCEEDED
								  : to == JS_FAILED ? JC_JOBS_FAILED : JC_JOBS_ABORTED,
								  isnull ? 0 : DatumGetTimestampTz(started), now);
	}
}

/* An un-claim: a job running its first attempt back to created, uncounted. */
static bool
is_unclaim(JobState from, JobState to, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	return from == JS_RUNNING && to == JS_CREATED &&
		tuple_attempts(oldtup, desc) == 1 && tuple_attempts(newtup, desc) == 0;
}

static bool
is_terminal(JobState s)
{
	return s == JS_SUCCEEDED || s == JS_FAILED || s == JS_ABORTED;
}

/*
 * A retry in place: a failed or aborted job back to waiting, by an UPDATE
 * that also clears finished_at, as job_engine_internal._retry() does.
 */
static bool
is_retry(JobState from, JobState to, HeapTuple newtup, TupleDesc desc)
{
	bool		isnull;

	if (!((from == JS_FAILED || from == JS_ABORTED) &&
		  (to == JS_CREATED || to == JS_RETRYING)))
		return false;
	(void) heap_getattr(newtup, guard_cache.finished_at, desc, &isnull);
	return isnull;
}

static bool
transition_allowed(JobState from, JobState to)
{
	switch (from)
	{
		case JS_CREATED:
			return to == JS_RUNNING || to == JS_ABORTED;
		case JS_RUNNING:
			return to == JS_SUCCEEDED || to == JS_FAILED ||
				to == JS_ABORTED || to == JS_RETRYING;
		case JS_RETRYING:
			return to == JS_RUNNING || to == JS_ABORTED;
		default:
			return false;
	}
}

/* The new row with its timestamps stamped for a move into state `to`. */
static HeapTuple
stamp_transition(HeapTuple newtup, TupleDesc desc, JobState to, TimestampTz at)
{
	Datum		now = TimestampTzGetDatum(at);
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			n = 0;
	bool		isnull;

	cols[n] = guard_cache.state_changed_at;
	values[n++] = now;
	if (to == JS_RUNNING)
	{
		(void) heap_getattr(newtup, guard_cache.started_at, desc, &isnull);
		if (isnull)
		{
			cols[n] = guard_cache.started_at;
			values[n++] = now;
		}
	}
	else if (is_terminal(to))
	{
		cols[n] = guard_cache.finished_at;
		values[n++] = now;
	}
	return heap_modify_tuple_by_cols(newtup, desc, n, cols, values, nulls);
}

/*
 * True while the top-level command is a COPY: pg_restore loads the jobs of
 * a dump that way, finished and running ones included.  (A COPY run inside
 * a function is not seen as one, so the rule holds there.)
 */
static bool
loading_by_copy(void)
{
	const char *q = debug_query_string;

	if (q == NULL)
		return false;
	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
		q++;
	return pg_strncasecmp(q, "COPY", 4) == 0 &&
		(q[4] == ' ' || q[4] == '\t' || q[4] == '\n' || q[4] == '\r');
}

static HeapTuple
guard_insert(HeapTuple newtup, JobState s)
{
	if (s != JS_CREATED && !loading_by_copy())
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("a job must be created in state \"created\", not \"%s\"", state_names[s]),
				 errhint("Create jobs with job_engine.submit(); only COPY, as pg_restore does, loads jobs in other states.")));
	return newtup;
}

static HeapTuple
guard_delete(HeapTuple oldtup, TupleDesc desc, JobState s)
{
	if (!is_terminal(s))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot delete job " INT64_FORMAT " in state \"%s\"",
						tuple_id(oldtup, desc), state_names[s]),
				 errhint("Only terminal jobs can be deleted; abort the job first.")));
	return oldtup;
}

static HeapTuple
guard_update(HeapTuple oldtup, JobState from, HeapTuple newtup, JobState to, TupleDesc desc)
{
	TimestampTz now;
	bool		unclaim;

	if (is_retry(from, to, newtup, desc))
		return stamp_transition(newtup, desc, to, GetCurrentTimestamp());
	if (is_terminal(from))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job " INT64_FORMAT " is %s and cannot change",
						tuple_id(oldtup, desc), state_names[from]),
				 errdetail("Terminal states are final."),
				 errhint("Use job_engine.resubmit() to run the same work again as a new job.")));
	if (from == to)
		return newtup;
	unclaim = is_unclaim(from, to, oldtup, newtup, desc);
	if (!transition_allowed(from, to) && !unclaim)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("illegal job state transition from \"%s\" to \"%s\" for job " INT64_FORMAT,
						state_names[from], state_names[to], tuple_id(oldtup, desc)),
				 errhint("Allowed: created->running|aborted, running->succeeded|failed|aborted|retrying, retrying->running|aborted.")));
	now = GetCurrentTimestamp();
	if (!unclaim)
		count_transition(from, to, oldtup, desc, now);
	return stamp_transition(newtup, desc, to, now);
}

/* The queue of a row, palloc'd; NULL if it has none. */
static char *
tuple_queue(HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, guard_cache.queue, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Notes a row written waiting in state `s` for the table of claim marks
 * (dispatch.c): a candidate (not held back, jobs_claim_idx's predicate)
 * for its queue's mark, a deferred one (blocked 't') for the time claims
 * release it (deferred.c).  By any statement, so that a row loaded by
 * COPY, or under session_replication_role = replica, is noted too.
 */
static void
note_waiting(HeapTuple tup, TupleDesc desc, JobState s)
{
	JeDispatchKey key;
	bool		isnull;
	Datum		blocked;
	text	   *queue;

	if (s != JS_CREATED && s != JS_RETRYING)
		return;
	blocked = heap_getattr(tup, guard_cache.blocked, desc, &isnull);
	if (!isnull)
	{
		if (DatumGetChar(blocked) == 't')
			je_dispatch_note_deferred(DatumGetTimestampTz(heap_getattr(tup, guard_cache.run_at,
																		 desc, &isnull)));
		return;
	}
	key.priority = DatumGetInt32(heap_getattr(tup, guard_cache.priority, desc, &isnull));
	key.run_at = DatumGetTimestampTz(heap_getattr(tup, guard_cache.run_at, desc, &isnull));
	key.id = DatumGetInt64(heap_getattr(tup, guard_cache.id, desc, &isnull));
	queue = DatumGetTextPP(heap_getattr(tup, guard_cache.queue, desc, &isnull));
	je_dispatch_note_candidate(VARDATA_ANY(queue), VARSIZE_ANY_EXHDR(queue), &key);
}

/*
 * Notes an update's move into or out of 'running', or of a running row to
 * another queue, for the running counts (running.c).  Only the queue of a
 * running side is read: a claim or an outcome reads one.
 */
static void
note_running_moves(Oid relid, HeapTuple oldtup, JobState from,
				   HeapTuple newtup, JobState to, TupleDesc desc)
{
	char	   *old_queue = from == JS_RUNNING ? tuple_queue(oldtup, desc) : NULL;
	char	   *new_queue = to == JS_RUNNING ? tuple_queue(newtup, desc) : NULL;

	if (from == to && old_queue != NULL && new_queue != NULL &&
		strcmp(old_queue, new_queue) == 0)
		return;
	if (from == JS_RUNNING)
		je_running_note_move(relid, old_queue, -1);
	if (to == JS_RUNNING)
		je_running_note_move(relid, new_queue, +1);
}

/*
 * Keeps jobs not yet due out of the claim (deferred.c): a waiting row
 * written with its run_at in the future is written deferred (blocked 't'),
 * and a deferred one whose run_at has come is written a candidate,
 * whatever statement wrote it (a submit, a retry's backoff, a release, a
 * superuser's UPDATE of run_at).  A job held back by a dependency or an
 * ordering key stays held: the claim that finds it runnable comes after
 * its release, which decides again.  Compared with the clock, not now():
 * a release makes candidates of the jobs due at its statement's start,
 * which is never later.
 */
static HeapTuple
defer_until_due(HeapTuple tup, TupleDesc desc, JobState s)
{
	bool		isnull;
	bool		deferred;
	bool		due;
	Datum		b;
	Datum		value = CharGetDatum('t');
	int			col = guard_cache.blocked;

	if (!guard_cache.defers || (s != JS_CREATED && s != JS_RETRYING))
		return tup;
	b = heap_getattr(tup, guard_cache.blocked, desc, &isnull);
	if (!isnull && DatumGetChar(b) != 't')
		return tup;
	deferred = !isnull;
	due = DatumGetTimestampTz(heap_getattr(tup, guard_cache.run_at, desc, &isnull)) <=
		GetCurrentTimestamp();
	if (deferred != due)
		return tup;
	return heap_modify_tuple_by_cols(tup, desc, 1, &col, &value, &due);
}

PG_FUNCTION_INFO_V1(job_engine_jobs_guard);

/*
 * The trigger jobs_lifecycle_guard, enabled ALWAYS, so that it sees every
 * row written to _jobs.  Under session_replication_role = replica (a
 * subscriber applying changes, a restore into a replica) it leaves the
 * rows as they come, unchecked, unstamped and uncounted, as a trigger that
 * is not ALWAYS would; in every role it notes what the shared tables
 * follow: the rows written as candidates (claim marks) and the moves into
 * and out of 'running' (running counts).  One C trigger for all of it: a
 * trigger with a WHEN clause costs every statement that updates _jobs the
 * parse and compile of its clause.
 */
Datum
job_engine_jobs_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			relid;
	TupleDesc	desc;
	HeapTuple	result;
	bool		checked;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("job_engine_internal._jobs_guard() must be a BEFORE ROW trigger")));

	relid = RelationGetRelid(trigdata->tg_relation);
	desc = RelationGetDescr(trigdata->tg_relation);
	load_guard_cache(trigdata->tg_relation);
	checked = SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA;
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		JobState	s = tuple_state(trigdata->tg_trigtuple, desc);

		result = checked ? defer_until_due(guard_insert(trigdata->tg_trigtuple, s), desc, s)
			: trigdata->tg_trigtuple;
		if (s == JS_RUNNING)
			je_running_untrust(relid);	/* loaded by COPY */
		note_waiting(result, desc, s);
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		JobState	s = tuple_state(trigdata->tg_trigtuple, desc);

		result = checked ? guard_delete(trigdata->tg_trigtuple, desc, s) : trigdata->tg_trigtuple;
		if (s == JS_RUNNING)
			je_running_untrust(relid);
	}
	else
	{
		HeapTuple	oldtup = trigdata->tg_trigtuple;
		JobState	from = tuple_state(oldtup, desc);
		JobState	to = tuple_state(trigdata->tg_newtuple, desc);

		result = checked
			? defer_until_due(guard_update(oldtup, from, trigdata->tg_newtuple, to, desc), desc, to)
			: trigdata->tg_newtuple;
		note_running_moves(relid, oldtup, from, result, to, desc);
		note_waiting(result, desc, to);
	}
	return PointerGetDatum(result);
}

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Whether an ALTER TABLE's commands enable or disable triggers. */
static bool
alters_triggers(List *cmds)
{
	ListCell   *lc;

	foreach(lc, cmds)
	{
		switch (((AlterTableCmd *) lfirst(lc))->subtype)
		{
			case AT_EnableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
			case AT_DisableTrig:
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				return true;
			default:
				break;
		}
	}
	return false;
}

/*
 * The OID of job_engine._jobs, or InvalidOid.  Looked up without the
 * privilege check of a name the user wrote (RangeVarGetRelid's): the hook
 * runs for every role's trigger commands, and one that may not use schema
 * job_engine must still change the triggers of its own tables.
 */
static Oid
jobs_relid(void)
{
	Oid			nsp = get_namespace_oid("job_engine", true);

	return OidIsValid(nsp) ? get_relname_relid("_jobs", nsp) : InvalidOid;
}

/*
 * Whether `rv` names job_engine._jobs.  Nothing is looked up for a table
 * of another name: the command resolved `rv` already, with the user's
 * rights, and succeeded.
 */
static bool
is_jobs(RangeVar *rv)
{
	Oid			jobs;

	if (rv == NULL || strcmp(rv->relname, "_jobs") != 0)
		return false;
	jobs = jobs_relid();
	return OidIsValid(jobs) && RangeVarGetRelid(rv, NoLock, true) == jobs;
}

/*
 * Whether a utility statement changed the triggers of job_engine._jobs.
 * Nothing is looked up for the other statements.
 */
static bool
changes_jobs_triggers(Node *stmt)
{
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			return alters_triggers(((AlterTableStmt *) stmt)->cmds) &&
				is_jobs(((AlterTableStmt *) stmt)->relation);
		case T_CreateTrigStmt:
			return is_jobs(((CreateTrigStmt *) stmt)->relation);
		case T_RenameStmt:
			return ((RenameStmt *) stmt)->renameType == OBJECT_TRIGGER &&
				is_jobs(((RenameStmt *) stmt)->relation);
		case T_DropStmt:
			if (((DropStmt *) stmt)->removeType != OBJECT_TRIGGER)
				return false;
			foreach(lc, ((DropStmt *) stmt)->objects)
			{
				/* [schema.]table.trigger */
				List	   *names = list_copy((List *) lfirst(lc));

				names = list_truncate(names, list_length(names) - 1);
				if (names != NIL && is_jobs(makeRangeVarFromNameList(names)))
					return true;
			}
			return false;
		default:
			return false;
	}
}

/*
 * Whether the current user may change the triggers of `relid` at all: own
 * it (ALTER TABLE ... ENABLE/DISABLE TRIGGER, ALTER TRIGGER, DROP TRIGGER)
 * or hold TRIGGER on it (CREATE TRIGGER).  A command of a user who may not
 * succeeded without changing one: DROP TRIGGER IF EXISTS of a trigger that
 * _jobs does not have skips before PostgreSQL checks the ownership, and any
 * role that may use schema job_engine would otherwise make every role's
 * claims walk the queues and count the rows at each of its commits.
 */
static bool
may_change_triggers(Oid relid)
{
	return je_relation_ownercheck(relid) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) == ACLCHECK_OK;
}

/*
 * Whether `t` is an enabled BEFORE ROW trigger of INSERT or UPDATE that
 * fires after the lifecycle guard (such triggers fire in the order of
 * their names, compared as strcmp() does): it could change a row the guard
 * has checked and noted, so the marks and counts are not used while it
 * exists (rows_noted_sql in src/dispatch.c asks the same).
 */
static bool
fires_after_guard(const Trigger *t)
{
	return t->tgenabled != TRIGGER_DISABLED &&
		TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_BEFORE(t->tgtype) &&
		(TRIGGER_FOR_INSERT(t->tgtype) || TRIGGER_FOR_UPDATE(t->tgtype)) &&
		strcmp(t->tgname, "jobs_lifecycle_guard") > 0;
}

/*
 * Whether the lifecycle guard and the TRUNCATE trigger of _jobs (`relid`)
 * are both enabled ALWAYS, and no trigger fires after the guard (its name
 * in *after_guard), as this transaction's commands so far left them
 * (the SQL form for the workers, which read a new snapshot, is
 * je_dispatch_rows_noted()); *truncate_trigger says whether the TRUNCATE
 * trigger exists at all (a database still at release 1.0 has none).  Told
 * to the superuser who changed them: `ENABLE TRIGGER ALL`, which
 * pg_restore --disable-triggers ends with, enables them for the origin
 * only.
 */
static bool
triggers_always(Oid relid, bool *truncate_trigger, char **after_guard)
{
	Relation	rel;
	int			found = 0;

	*truncate_trigger = false;
	*after_guard = NULL;
	CommandCounterIncrement();	/* the command's own change to pg_trigger */
	rel = table_open(relid, AccessShareLock);
	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];
		bool		truncate = strcmp(t->tgname, "jobs_running_truncated") == 0;

		*truncate_trigger |= truncate;
		if (t->tgenabled == TRIGGER_FIRES_ALWAYS &&
			(truncate || strcmp(t->tgname, "jobs_lifecycle_guard") == 0))
			found++;
		if (*after_guard == NULL && fires_after_guard(t))
			*after_guard = pstrdup(t->tgname);
	}
	table_close(rel, AccessShareLock);
	return found == 2 && *after_guard == NULL;
}

/*
 * After a command that enabled, disabled, created, renamed or dropped a
 * trigger of job_engine._jobs (see the top): the rows written from its
 * commit on may go unnoted, so the claim marks are incomplete and the
 * running counts untrusted from then on.  Both are rebuilt only once the
 * triggers are enabled ALWAYS again (je_dispatch_rows_noted()), from a
 * snapshot that sees every row written while they were not: enabling a
 * trigger waits for the transactions that write _jobs.
 */
static void
guard_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					  ProcessUtilityContext context, ParamListInfo params,
					  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
	if (IsTransactionState() && changes_jobs_triggers(pstmt->utilityStmt))
	{
		Oid			relid = jobs_relid();
		bool		truncate_trigger;
		char	   *after_guard;

		if (!may_change_triggers(relid))
			return;
		je_running_untrust(relid);
		je_dispatch_reset_at_commit();
		if (creating_extension || IsBinaryUpgrade ||
			triggers_always(relid, &truncate_trigger, &after_guard))
			return;
		if (after_guard != NULL)
			ereport(WARNING,
					(errmsg("job_engine's claim marks and running counts are not used while trigger \"%s\" of job_engine._jobs fires after jobs_lifecycle_guard",
							after_guard),
					 errdetail("BEFORE ROW triggers fire in the order of their names: this one could change a job the guard has already checked and noted. "
							   "Until it is gone claims walk every queue and count running jobs from the rows, which costs more while an old snapshot is held."),
					 errhint("Rename it to a name that sorts before jobs_lifecycle_guard in byte order (ALTER TRIGGER ... RENAME TO), or drop or disable it.")));
		else
			ereport(WARNING,
					(errmsg("job_engine's claim marks and running counts are not used while a trigger of job_engine._jobs is not enabled ALWAYS"),
					 errdetail("Until then claims walk every queue and count running jobs from the rows, which costs more while an old snapshot is held; "
							   "with the lifecycle guard disabled, job states are not checked either."),
					 truncate_trigger
					 ? errhint("Run ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_lifecycle_guard and ALTER TABLE job_engine._jobs ENABLE ALWAYS TRIGGER jobs_running_truncated.")
					 : errhint("The trigger jobs_running_truncated comes with release 1.1: run ALTER EXTENSION job_engine UPDATE.")));
	}
}

void
je_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = guard_process_utility;
}
