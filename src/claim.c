/*
 * claim.c
 *	  The claim: picks the next runnable jobs of this database and marks them
 *	  running, for an executor (executor.c) or for job_engine._claim(); and
 *	  the executor's claim buffers, filled by a claim in a transaction of its
 *	  own (je_claim_next) or chained to the transaction recording an
 *	  attempt (je_claim_chained).
 *
 * Runnable (docs/architecture.md, "3. Claim → attempt → record"): waiting,
 * due, its queue not paused, its dependencies succeeded, no earlier
 * unfinished job with its ordering key, and room left under its queue's
 * concurrency limit.
 *
 * Two prepared statements do the common case:
 *   1. pick the queue whose first due job comes first (no locks taken), so
 *      that jobs parked in a paused or full queue are never scanned;
 *   2. in it, lock up to group_commit runnable jobs FOR UPDATE SKIP LOCKED,
 *      mark them running, insert their attempts and return them with their
 *      handlers, all in one statement.  A group never mixes owners: its
 *      first job is claimed alone, then the others only among that job's
 *      owner's (the group's jobs share a transaction, docs/architecture.md
 *      "Group commit").
 * A queue with a concurrency limit has its row locked and its running jobs
 * counted between the two, so that concurrent claims cannot overshoot it.
 * A queue with nothing claimable (all due jobs blocked, being claimed, or
 * the queue full) is excluded and the pick repeated.
 *
 * The statements are planned once per process, generically, under the
 * settings of je_push_internal_settings(true) (internal_sql.c).  Running
 * them from C keeps a claim at two statements and no function call, the
 * claim being about half of an executor's CPU time per job.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "access/xact.h"
#include "postmaster/interrupt.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "claim.h"
#include "execution_context.h"
#include "internal_sql.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

/* 1. the queue to claim from */
static const char *pick_queue_sql =
"SELECT wq.name, wq.concurrency, wq.group_commit, head.priority, head.run_at, head.id"
"  FROM job_engine.queues wq"
" CROSS JOIN LATERAL ("
"        SELECT j.priority, j.run_at, j.id FROM job_engine._jobs j"
"         WHERE j.queue OPERATOR(pg_catalog.=) wq.name"
"           AND j.state IN ('created', 'retrying')"
"           AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"         ORDER BY j.priority, j.run_at, j.id"
"         LIMIT 1) head"
" WHERE NOT wq.paused"
"   AND wq.name OPERATOR(pg_catalog.<>) ALL ($1)"
" ORDER BY head.priority, head.run_at, head.id"
" LIMIT 1";

/* For a queue with a concurrency limit: its row locked, then its running jobs. */
static const char *lock_queue_sql =
"SELECT 1 FROM job_engine.queues WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE";
static const char *count_running_sql =
"SELECT pg_catalog.count(*)::integer FROM job_engine._jobs r"
" WHERE r.state OPERATOR(pg_catalog.=) 'running'"
"   AND r.worker_pid IS NOT NULL"
"   AND r.queue OPERATOR(pg_catalog.=) $1";

/*
 * 2. up to $2 runnable jobs of queue $1, claimed for worker $3, starting at
 * the head found by statement 1, key ($4, $5, $6): no waiting job comes
 * before it, and starting there spares a second walk over the index entries
 * of jobs claimed since the last vacuum.  The claimed ids are handed to the
 * UPDATE as an array, not joined: with statistics that call _jobs empty (a
 * new or truncated table), a generic plan joined them by scanning all of
 * _jobs for every claim.  With $7, only jobs of that owner.  The columns are those of job_engine._claim().  The handler is a LEFT JOIN: a job whose
 * handler is gone is still claimed, and its attempt fails saying so, rather
 * than being marked running with nobody to run it.
 */
static const char *claim_sql =
"WITH c AS ("
"    SELECT j.id FROM job_engine._jobs j"
"     WHERE j.queue OPERATOR(pg_catalog.=) $1"
"       AND j.state IN ('created', 'retrying')"
"       AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"       AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=) ROW($4, $5, $6)"
"       AND ($7::pg_catalog.oid IS NULL OR j.owner OPERATOR(pg_catalog.=) $7)"
"       AND (j.depends_on IS NULL OR NOT EXISTS ("
"                SELECT 1 FROM job_engine._dependencies d"
"                  JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) d.depends_on"
"                 WHERE d.job_id OPERATOR(pg_catalog.=) j.id"
"                   AND p.state OPERATOR(pg_catalog.<>) 'succeeded'))"
"       AND (j.ordering_key IS NULL OR NOT EXISTS ("
"                SELECT 1 FROM job_engine._jobs o"
"                 WHERE o.ordering_key OPERATOR(pg_catalog.=) j.ordering_key"
"                   AND o.id OPERATOR(pg_catalog.<) j.id"
"                   AND o.state IN ('created', 'running', 'retrying')))"
"     ORDER BY j.priority, j.run_at, j.id"
"     LIMIT $2"
"     FOR UPDATE OF j SKIP LOCKED),"
" u AS ("
"    UPDATE job_engine._jobs x"
"       SET state = 'running', attempts = x.attempts OPERATOR(pg_catalog.+) 1,"
"           worker_pid = $3"
"     WHERE x.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM c))"
"    RETURNING x.*),"
" a AS ("
"    INSERT INTO job_engine._attempts (job_id, attempt, started_at, worker_pid)"
"    SELECT u.id, u.attempts, pg_catalog.clock_timestamp(), $3 FROM u)"
"SELECT u.id, u.attempts, h.fn, u.owner,"
/* The handler's timeout in ms, inline: a SQL function with a SET clause
 * would be parsed and planned again in every transaction.  NULL without one
 * (LEAST would turn it into the cap), for job_engine.default_timeout. */
"       CASE WHEN h.timeout IS NOT NULL THEN"
"            LEAST(pg_catalog.ceil(pg_catalog.date_part('epoch', h.timeout)"
"                      OPERATOR(pg_catalog.*) 1000), 2147483647)::integer END,"
"       u.args, u.handler, u.queue, u.correlation_id, u.parent_job_id,"
"       u.event_id, h.library, h.symbol"
"  FROM u LEFT JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) u.handler"
" ORDER BY u.priority, u.run_at, u.id";

static SPIPlanPtr pick_queue_plan = NULL;
static SPIPlanPtr lock_queue_plan = NULL;
static SPIPlanPtr count_running_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr due_plan = NULL;
static SPIPlanPtr unclaim_plan = NULL;

/*
 * Undoes the claims of jobs ($1 ids, $2 attempts) whose attempts never
 * started in worker $3: the attempt row goes, and the job is waiting again
 * as it was before the claim (created after no attempt, retrying after
 * some).  Fenced like an outcome: a job that is no longer running there is
 * left alone.
 */
static const char *unclaim_sql =
"WITH v AS ("
"    SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"                             pg_catalog.unnest($2::pg_catalog.int4[])) AS v(id, attempt)),"
" j AS ("
"    UPDATE job_engine._jobs x"
"       SET state = CASE WHEN x.attempts OPERATOR(pg_catalog.=) 1"
"                        THEN 'created'::job_engine.job_state"
"                        ELSE 'retrying'::job_engine.job_state END,"
"           started_at = CASE WHEN x.attempts OPERATOR(pg_catalog.=) 1 THEN NULL"
"                             ELSE x.started_at END,"
"           attempts = x.attempts OPERATOR(pg_catalog.-) 1, worker_pid = NULL"
"      FROM v"
"     WHERE x.id OPERATOR(pg_catalog.=) ANY ($1)"
"       AND x.id OPERATOR(pg_catalog.=) v.id"
"       AND x.attempts OPERATOR(pg_catalog.=) v.attempt"
"       AND x.state OPERATOR(pg_catalog.=) 'running'"
"       AND x.worker_pid OPERATOR(pg_catalog.=) $3"
"    RETURNING x.id, v.attempt)"
"DELETE FROM job_engine._attempts a USING j"
" WHERE a.job_id OPERATOR(pg_catalog.=) ANY ($1)"
"   AND a.job_id OPERATOR(pg_catalog.=) j.id"
"   AND a.attempt OPERATOR(pg_catalog.=) j.attempt";

static void
prepare_claim_plans(void)
{
	Oid			text_array[1] = {TEXTARRAYOID};
	Oid			text1[1] = {TEXTOID};
	Oid			claim_args[7] = {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, INT8OID, OIDOID};

	if (claim_plan != NULL)
		return;
	pick_queue_plan = je_keep_generic_plan(pick_queue_sql, 1, text_array);
	lock_queue_plan = je_keep_generic_plan(lock_queue_sql, 1, text1);
	count_running_plan = je_keep_generic_plan(count_running_sql, 1, text1);
	claim_plan = je_keep_generic_plan(claim_sql, 7, claim_args);
}

/* The array of excluded queue names, as a text[] datum. */
static Datum
queue_names_array(Datum *names, int n)
{
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}

typedef struct PickedQueue
{
	Datum		name;			/* text, in the caller's context */
	int32		concurrency;	/* 0: no limit */
	int32		group_commit;
	int32		head_priority;	/* its first due job's key */
	TimestampTz head_run_at;
	int64		head_id;
} PickedQueue;

/* Statement 1; false when no unpaused, non-excluded queue has a due job. */
static bool
pick_queue(Datum *excluded, int nexcluded, PickedQueue *q, MemoryContext cxt)
{
	Datum		arg = queue_names_array(excluded, nexcluded);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	MemoryContext old;

	if (SPI_execute_plan(pick_queue_plan, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: picking a queue to claim from failed");
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(cxt);
	q->name = datumCopy(SPI_getbinval(tup, desc, 1, &isnull), false, -1);
	MemoryContextSwitchTo(old);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	q->concurrency = isnull ? 0 : DatumGetInt32(d);
	q->group_commit = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	q->head_priority = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
	q->head_run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
	q->head_id = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	return true;
}

/*
 * For a queue with a concurrency limit: locks its row, so that claims for
 * it take turns, then counts its running jobs (a statement of its own, whose
 * snapshot sees the claims committed before the lock was granted).  Returns
 * how many more may start.
 */
static int32
queue_room(PickedQueue *q)
{
	Datum		running;
	bool		isnull;

	if (SPI_execute_plan(lock_queue_plan, &q->name, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: locking queue failed");
	if (SPI_execute_plan(count_running_plan, &q->name, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "job_engine: counting running jobs failed");
	running = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return q->concurrency - DatumGetInt32(running);
}

/*
 * Statement 2: up to `limit` jobs of queue q for worker `pid`, of `owner`
 * only unless it is invalid; each row is handed to `sink`, numbered from
 * `first`.  Returns how many were claimed.
 */
static uint64
claim_from(PickedQueue *q, int32 limit, int32 pid, Oid owner,
		   JeClaimSink sink, void *arg, uint64 first)
{
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', 'n'};

	args[0] = q->name;
	args[1] = Int32GetDatum(limit);
	args[2] = Int32GetDatum(pid);
	args[3] = Int32GetDatum(q->head_priority);
	args[4] = TimestampTzGetDatum(q->head_run_at);
	args[5] = Int64GetDatum(q->head_id);
	args[6] = ObjectIdGetDatum(owner);
	if (OidIsValid(owner))
		nulls[6] = ' ';
	if (SPI_execute_plan(claim_plan, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: claim failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		sink(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, first + i, arg);
	return SPI_processed;
}

/*
 * Claims for worker `pid` in the current transaction and SPI connection.
 * Returns the number of jobs claimed; their rows (the columns of
 * job_engine._claim) are handed to `sink` one by one, in order.  A group's
 * first job is claimed alone and the rest among its owner's jobs, so that
 * the group has one owner whichever job its queue's head is (a head
 * blocked by a dependency must not keep other owners' jobs waiting).
 */
uint64
je_claim(int32 pid, JeClaimSink sink, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *excluded = palloc(sizeof(Datum) * 8);
	int			nexcluded = 0;
	int			maxexcluded = 8;
	int			level;
	uint64		nclaimed = 0;

	level = je_push_internal_settings(true);
	prepare_claim_plans();
	for (;;)
	{
		PickedQueue q;
		int32		limit;

		if (!pick_queue(excluded, nexcluded, &q, cxt))
			break;
		limit = q.group_commit;
		if (q.concurrency > 0)
			limit = Min(limit, queue_room(&q));
		if (limit > 0)
		{
			nclaimed = claim_from(&q, 1, pid, InvalidOid, sink, arg, 0);
			if (nclaimed > 0)
			{
				if (limit > 1)
				{
					bool		isnull;
					Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
																	   SPI_tuptable->tupdesc,
																	   4, &isnull));

					nclaimed += claim_from(&q, limit - 1, pid, owner, sink, arg, 1);
				}
				break;
			}
		}
		/* Nothing claimable there: try the other queues. */
		if (nexcluded == maxexcluded)
		{
			maxexcluded *= 2;
			excluded = repalloc(excluded, sizeof(Datum) * maxexcluded);
		}
		excluded[nexcluded++] = q.name;
	}
	je_pop_internal_settings(level);
	return nclaimed;
}

/*
 * Puts claimed jobs whose attempts never started back to waiting, in the
 * current transaction and SPI connection (a group that ends early,
 * group_commit.c).
 */
void
je_unclaim(ExecutionContext *jobs, int njobs)
{
	Datum	   *ids = palloc(sizeof(Datum) * njobs);
	Datum	   *attempts = palloc(sizeof(Datum) * njobs);
	Datum		values[3];
	int			rc;

	for (int i = 0; i < njobs; i++)
	{
		ids[i] = Int64GetDatum(jobs[i].job_id);
		attempts[i] = Int32GetDatum(jobs[i].attempt);
	}
	values[0] = PointerGetDatum(construct_array(ids, njobs, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(attempts, njobs, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = Int32GetDatum(MyProcPid);
	if (unclaim_plan == NULL)
	{
		Oid			argtypes[3] = {INT8ARRAYOID, INT4ARRAYOID, INT4OID};

		unclaim_plan = je_keep_plan(unclaim_sql, 3, argtypes);
	}
	rc = je_execute_plan(unclaim_plan, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "job_engine: giving claimed jobs back failed: %s", SPI_result_code_string(rc));
}

/*
 * job_engine._claim(pid): the executor's claim as a function, for tests
 * that race claims against each other from ordinary sessions.
 */
PG_FUNCTION_INFO_V1(job_engine_claim);

static void
claim_to_tuplestore(HeapTuple tup, TupleDesc desc, uint64 index, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[JE_CLAIM_COLUMNS];
	bool		nulls[JE_CLAIM_COLUMNS];

	heap_deform_tuple(tup, desc, values, nulls);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

Datum
job_engine_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		pid = PG_GETARG_INT32(0);

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	(void) je_claim(pid, claim_to_tuplestore, rsinfo);
	SPI_finish();
	return (Datum) 0;
}

static char *
get_text(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *value = SPI_getvalue(tup, desc, col);

	return value ? pstrdup(value) : NULL;
}

static int64
get_int64(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, desc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/* Copies the claimed row (see job_engine._claim) into `job`, in the current context. */
static void
read_claimed_job(ExecutionContext *job, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	memset(job, 0, sizeof(*job));
	job->job_id = get_int64(tup, desc, 1, &isnull);
	job->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	job->fn = get_text(tup, desc, 3);
	job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	d = SPI_getbinval(tup, desc, 5, &isnull);
	job->timeout_ms = isnull ? je_default_timeout_ms : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	job->args_jsonb = datumCopy(d, false, -1);
	job->handler = get_text(tup, desc, 7);
	job->queue = get_text(tup, desc, 8);
	job->correlation_id = get_text(tup, desc, 9);
	job->parent_job_id = get_int64(tup, desc, 10, &isnull);
	job->has_parent = !isnull;
	job->event_id = get_int64(tup, desc, 11, &isnull);
	job->has_event = !isnull;
	job->library = get_text(tup, desc, 12);
	job->symbol = get_text(tup, desc, 13);
}

/* Copies a claimed row into the claim buffer `arg`, in its memory context. */
static void
claim_to_buffer(HeapTuple tup, TupleDesc desc, uint64 index, void *arg)
{
	ClaimBuffer *buf = (ClaimBuffer *) arg;
	MemoryContext old;

	if (index >= JE_MAX_GROUP)
		return;
	if (index == 0)
		MemoryContextReset(buf->cxt);
	old = MemoryContextSwitchTo(buf->cxt);
	read_claimed_job(&buf->jobs[index], tup, desc);
	MemoryContextSwitchTo(old);
	buf->njobs = (int) index + 1;
}

/*
 * Runs the claim (one job, or a group of one queue) in the current
 * transaction and SPI connection, filling `buf`.  Without a job,
 * *due_in_ms gets the time until the next delayed job (-1: none) when
 * due_in_ms is not NULL.
 */
static void
claim_in_xact(ClaimBuffer *buf, long *due_in_ms)
{
	uint64		nclaimed;
	int			rc;

	buf->njobs = 0;
	nclaimed = je_claim(MyProcPid, claim_to_buffer, buf);
	if (nclaimed > 0)
		je_executor_count_claims(nclaimed);
	else if (due_in_ms != NULL)
	{
		bool		isnull;
		Datum		d;

		if (due_plan == NULL)
			due_plan = je_keep_plan("SELECT job_engine._next_due_in()", 0, NULL);
		rc = je_execute_plan(due_plan, NULL, NULL, true, 1);
		if (rc == SPI_OK_SELECT && SPI_processed == 1)
		{
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				*due_in_ms = (long) Max(0.0, DatumGetFloat8(d) * 1000.0);
		}
	}
}

/*
 * Claims in a transaction of its own, which commits (synchronously) before
 * any handler starts so that a crash is attributable: were the claim lost,
 * the attempt started on it would vanish instead of being recorded crashed.
 */
void
je_claim_next(ClaimBuffer *buf, long *due_in_ms)
{
	bool		keep;

	*due_in_ms = -1;
	je_worker_begin_xact("job_engine: claiming");
	claim_in_xact(buf, due_in_ms);
	/* Another owner's jobs stay waiting, for a fresh executor (execution_context.c). */
	keep = buf->njobs == 0 || je_session_take(buf->jobs[0].owner);
	if (!keep)
		buf->njobs = 0;
	je_worker_end_xact(keep);
}

/*
 * Claims the next jobs inside the transaction recording an attempt, so the
 * claim rides on that commit.  A subtransaction keeps a failing claim from
 * failing the attempt, and is rolled back if the jobs are another owner's;
 * nothing is claimed while the executor is stopping or retiring.
 */
void
je_claim_chained(ClaimBuffer *next)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	next->njobs = 0;
	if (ProcDiePending || ConfigReloadPending || je_session_retiring())
		return;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		claim_in_xact(next, NULL);
		if (next->njobs == 0 || je_session_take(next->jobs[0].owner))
			ReleaseCurrentSubTransaction();
		else
		{
			next->njobs = 0;
			RollbackAndReleaseCurrentSubTransaction();
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		next->njobs = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
}
