/*
 * outcome.c
 *	  Recording an attempt's outcome, success or failure, and the
 *	  'job_engine' notification of every job transition.
 *
 * Success is the hot path: one statement updates the job and its attempt,
 * fenced by (state, attempt), and says whether the success may unblock
 * other jobs; the notification is queued from C.  A failure is recorded
 * through job_engine_internal._record_failure(), which applies the retry policy; it,
 * aborts and crash recovery keep their PL/pgSQL, which calls
 * job_engine_internal._notify(), the function below, for the same payload.
 *
 * The job's row may be locked by a user's transaction (an abort() of it,
 * left open).  Recording waits for it at most RECORD_LOCK_TIMEOUT_MS: a
 * success that cannot be recorded fails the attempt (its work rolls back),
 * and a failure that cannot be recorded is left in
 * job_engine._pending_outcomes, which crash recovery's periodic pass records
 * once the row is free.  The job stays running meanwhile, so no outcome is
 * lost, and the executor goes on with other jobs.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/uuid.h"

#include "claim.h"
#include "execution_context.h"
#include "failure_log.h"
#include "internal_sql.h"
#include "outcome.h"
#include "settings.h"
#include "shmem.h"
#include "wakeup.h"
#include "worker.h"

/*
 * Records successes: $1 job ids, $2 their attempts, $3 their results (one
 * job for a single attempt, a whole group for group_commit.c).  Fenced by
 * (state, attempt): a job aborted or recovered meanwhile is not written, and
 * the caller rolls its attempt back.  Each job finds its attempt and result
 * by its place in $1 (array_position) rather than by a join with the lists:
 * an UPDATE joined to another relation carries a copy of that relation's
 * whole row per updated row (for rechecks after a concurrent update), which
 * cost more than the lookups.  For the same reason the attempts are found
 * through an array of the recorded ids, not a join with them.  Both tables
 * are probed by their primary key with the ids as an array.
 */
static const char *success_sql =
"WITH j AS ("
"    UPDATE job_engine._jobs x"
"       SET state = 'succeeded',"
"           result = ($3)[pg_catalog.array_position($1, x.id)],"
"           worker_pid = NULL"
"     WHERE x.id OPERATOR(pg_catalog.=) ANY ($1)"
"       AND x.state OPERATOR(pg_catalog.=) 'running'"
"       AND x.attempts OPERATOR(pg_catalog.=) ($2)[pg_catalog.array_position($1, x.id)]"
"    RETURNING x.id, x.handler, x.queue, x.attempts, x.correlation_id, x.ordering_key),"
" a AS ("
"    UPDATE job_engine._attempts a"
"       SET outcome = 'succeeded', finished_at = pg_catalog.clock_timestamp()"
"     WHERE a.job_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT j.id FROM j))"
"       AND a.attempt OPERATOR(pg_catalog.=) ($2)[pg_catalog.array_position($1, a.job_id)])"
"SELECT j.handler, j.queue, j.correlation_id,"
"       j.ordering_key IS NOT NULL OR EXISTS ("
"            SELECT 1 FROM job_engine._dependencies x"
"             WHERE x.depends_on OPERATOR(pg_catalog.=) j.id),"
"       j.id, j.attempts"
"  FROM j";

/*
 * A failure recorded without the retry policy, when recording it with the
 * policy failed: $1 job, $2 attempt, $3..$7 the error.  The job fails, with
 * the handler's own error.  Fenced like every record.
 */
static const char *fallback_failure_sql =
"WITH j AS ("
"    UPDATE job_engine._jobs x"
"       SET state = 'failed', worker_pid = NULL,"
"           last_error = pg_catalog.format('%s (SQLSTATE %s, attempt %s)',"
"                                          COALESCE($4, 'unknown error'), $3, x.attempts)"
"     WHERE x.id OPERATOR(pg_catalog.=) $1"
"       AND x.state OPERATOR(pg_catalog.=) 'running'"
"       AND x.attempts OPERATOR(pg_catalog.=) $2"
"    RETURNING x.id, x.attempts, x.handler, x.queue, x.correlation_id),"
" a AS ("
"    UPDATE job_engine._attempts a"
"       SET outcome = 'failed', finished_at = pg_catalog.clock_timestamp(),"
"           sqlstate = $3, message = $4, detail = $5, hint = $6, context = $7"
"      FROM j"
"     WHERE a.job_id OPERATOR(pg_catalog.=) j.id"
"       AND a.attempt OPERATOR(pg_catalog.=) j.attempts)"
"SELECT j.handler, j.queue, j.correlation_id FROM j";

static SPIPlanPtr success_plan = NULL;
static SPIPlanPtr unblock_plan = NULL;
static SPIPlanPtr failure_plan = NULL;
static SPIPlanPtr pending_plan = NULL;
static SPIPlanPtr fallback_plan = NULL;
static SPIPlanPtr consequences_plan = NULL;
static SPIPlanPtr running_plan = NULL;

/*
 * How long recording an outcome waits for the job's row: long enough for
 * the engine's own transactions and a committing abort(), short enough that
 * a transaction left open cannot hold an executor.
 */
#define RECORD_LOCK_TIMEOUT_MS 1000

/*
 * Queues the notification of job `job_id`'s new state, sent at commit (by an
 * executor just after it: worker.c).
 * A full notification queue would make the recording transaction fail at
 * commit and lose the outcome; the table is the source of truth, so past
 * half full it is skipped with a WARNING instead.
 */
void
je_notify_transition(int64 job_id, const char *state, const char *handler,
					 const char *queue, int32 attempt, const char *correlation_id)
{
	StringInfoData payload;
	double		usage;

	LOCAL_FCINFO(fcinfo, 0);

	if (!je_notify)
		return;
	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	usage = DatumGetFloat8(pg_notification_queue_usage(fcinfo));
	if (usage >= 0.5)
	{
		ereport(WARNING,
				(errmsg("job_engine: notification queue is %.1f%% full, not notifying outcome of job " INT64_FORMAT,
						usage * 100, job_id),
				 errhint("A session listening on channel \"job_engine\" is not consuming notifications.")));
		return;
	}

	/* The layout of json_build_object(), which clients have parsed so far. */
	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"job_id\" : " INT64_FORMAT ", \"state\" : ", job_id);
	escape_json(&payload, state);
	appendStringInfoString(&payload, ", \"handler\" : ");
	escape_json(&payload, handler);
	appendStringInfoString(&payload, ", \"queue\" : ");
	escape_json(&payload, queue);
	appendStringInfo(&payload, ", \"attempt\" : %d, \"correlation_id\" : ", attempt);
	if (correlation_id != NULL)
		escape_json(&payload, correlation_id);
	else
		appendStringInfoString(&payload, "null");
	appendStringInfoChar(&payload, '}');
	je_worker_notify("job_engine", payload.data);
	pfree(payload.data);
}

static char *
text_column(HeapTuple tup, TupleDesc desc, int col)
{
	return SPI_getvalue(tup, desc, col);
}

/*
 * What follows a recorded success, from its row (handler, queue,
 * correlation_id, may unblock): the notification.  Returns whether jobs may
 * have been unblocked (dependants, or the next job with its ordering key).
 * The place a success frees in a queue with a concurrency limit needs no
 * wake-up: the executor claims again in this very transaction
 * (je_claim_chained), and takes it unless a better job is claimable, which
 * no other executor then sleeps beside.
 */
static bool
after_success(int64 job_id, int32 attempt, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;

	je_notify_transition(job_id, "succeeded", text_column(tup, desc, 1),
						 text_column(tup, desc, 2), attempt, text_column(tup, desc, 3));
	return DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
}

/* Names the outcome being recorded in the context of an error. */
static void
recording_context(void *arg)
{
	int64	   *ids = (int64 *) arg;

	errcontext("job_engine: recording the outcome of job " INT64_FORMAT
			   " (the job's row may be locked by an abort() not yet committed)", ids[0]);
}

/*
 * Records the successes ids[i], attempts[i], results[i] (nulls[i]) for
 * i < n in one statement, in the current transaction and SPI connection,
 * then releases the jobs they may unblock (job_engine_internal._unblock()).
 * Returns how many were recorded; fewer than n means some job was decided
 * meanwhile (aborted, recovered) and the caller must not commit its work.
 */
uint64
je_record_successes_in_xact(int64 *ids, int32 *attempts, Datum *results, bool *nulls, int n)
{
	Datum	   *id_datums = palloc(sizeof(Datum) * n);
	Datum	   *attempt_datums = palloc(sizeof(Datum) * n);
	Datum	   *unblock = palloc(sizeof(Datum) * n);
	int			nunblock = 0;
	Datum		values[3];
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			level;
	int			rc;
	uint64		recorded;
	ErrorContextCallback errcallback;

	for (int i = 0; i < n; i++)
	{
		id_datums[i] = Int64GetDatum(ids[i]);
		attempt_datums[i] = Int32GetDatum(attempts[i]);
	}
	values[0] = PointerGetDatum(construct_array(id_datums, n, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(attempt_datums, n, INT4OID, 4,
												true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(results, nulls, 1, dims, lbs, JSONBOID,
												   -1, false, TYPALIGN_INT));

	/* The claim's planner settings: an index probe per job, whatever the estimates. */
	level = je_push_internal_settings(true);
	(void) je_push_lock_timeout(RECORD_LOCK_TIMEOUT_MS);
	if (success_plan == NULL)
	{
		Oid			argtypes[3] = {INT8ARRAYOID, INT4ARRAYOID, JSONBARRAYOID};

		success_plan = je_keep_generic_plan(success_sql, 3, argtypes);
	}
	errcallback.callback = recording_context;
	errcallback.arg = ids;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	rc = SPI_execute_plan(success_plan, values, NULL, false, 0);
	error_context_stack = errcallback.previous;
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recording successes failed: %s", SPI_result_code_string(rc));

	recorded = SPI_processed;
	for (uint64 i = 0; i < recorded; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		id = SPI_getbinval(tup, desc, 5, &isnull);

		if (after_success(DatumGetInt64(id), DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)),
						  tup, desc))
			unblock[nunblock++] = id;
	}
	if (nunblock > 0)
	{
		Datum		arg = PointerGetDatum(construct_array(unblock, nunblock, INT8OID, 8,
														  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

		if (unblock_plan == NULL)
		{
			Oid			argtypes[1] = {INT8ARRAYOID};

			unblock_plan = je_keep_plan("SELECT _unblock($1)", 1, argtypes);
		}
		rc = SPI_execute_plan(unblock_plan, &arg, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "job_engine: releasing the jobs a success unblocks failed: %s",
				 SPI_result_code_string(rc));
	}
	je_pop_internal_settings(level);
	return recorded;
}

/* One attempt's success; false when fenced out. */
bool
je_record_success_in_xact(int64 job_id, int32 attempt, Datum result, bool result_isnull)
{
	return je_record_successes_in_xact(&job_id, &attempt, &result, &result_isnull, 1) == 1;
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* The error's SQLSTATE, message, detail, hint and context as 5 arguments. */
static void
error_values(ErrorData *edata, Datum *values, char *nulls)
{
	values[0] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	nulls[0] = ' ';
	values[1] = text_or_null(edata->message, &nulls[1]);
	values[2] = text_or_null(edata->detail, &nulls[2]);
	values[3] = text_or_null(edata->hint, &nulls[3]);
	values[4] = text_or_null(edata->context, &nulls[4]);
}

/* A failure to record: the attempt, its error, and why it needs a fallback. */
typedef struct FailureRecord
{
	ExecutionContext *job;
	ErrorData  *edata;
	ErrorData  *recording_error;	/* NULL: record it with the retry policy */
	bool		recorded;		/* the retry policy recorded it (not fenced) */
} FailureRecord;

/* The error of je_unrecordable_outcome(). */
static ErrorData unrecordable_outcome;

/* job_engine_internal._record_failure(): the attempt failed, the retry policy applies. */
static void
record_with_policy(void *arg)
{
	FailureRecord *rec = arg;
	ExecutionContext *job = rec->job;
	ErrorData  *edata = rec->edata;
	Datum		values[8];
	char		nulls[8];
	int			rc;
	int			level;

	if (failure_plan == NULL)
	{
		Oid			argtypes[8] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID};

		failure_plan = je_keep_plan("SELECT _record_failure($1, $2, "
									"$3::job_engine.attempt_outcome, $4, $5, $6, $7, $8)",
									8, argtypes);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(job->job_id);
	values[1] = Int32GetDatum(job->attempt);
	values[2] = CStringGetTextDatum("failed");
	error_values(edata, &values[3], &nulls[3]);
	/* The bounded wait after the internal settings, which reset lock_timeout. */
	level = je_push_internal_settings(false);
	(void) je_push_lock_timeout(RECORD_LOCK_TIMEOUT_MS);
	rc = SPI_execute_plan(failure_plan, values, nulls, false, 1);
	je_pop_internal_settings(level);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recording failure failed: %s", SPI_result_code_string(rc));
	rec->recorded = SPI_processed == 1 &&
		SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) != NULL;
}

/* The consequences of the fallback's 'failed' (compensation, dependents). */
static void
fallback_consequences(void *arg)
{
	FailureRecord *rec = arg;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(rec->job->job_id)};

	if (consequences_plan == NULL)
		consequences_plan = je_keep_plan("SELECT _after_transition(x)"
										 "  FROM job_engine._jobs x WHERE x.id OPERATOR(pg_catalog.=) $1",
										 1, argtypes);
	if (je_execute_plan(consequences_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: applying the consequences of a failure failed");
}

/*
 * When recording the failure with the retry policy failed: the attempt is
 * recorded failed with the handler's own error, the recording error added
 * to its context, and the job fails.  Its consequences (notification,
 * compensation, dependents) follow if they can; at least the notification
 * does.
 */
static void
record_fallback(FailureRecord *rec)
{
	ErrorData  *edata = rec->edata;
	ErrorData  *recording_error = rec->recording_error;
	StringInfoData context;
	Datum		values[7];
	char		nulls[7];
	ErrorData  *consequence_error;
	int			level;
	int			rc;
	char	   *handler;
	char	   *queue;
	char	   *correlation_id;

	ereport(WARNING,
			(errmsg("job_engine: could not record the failure of job " INT64_FORMAT " attempt %d with its retry policy: %s",
					rec->job->job_id, rec->job->attempt, recording_error->message),
			 errdetail("The job fails with its own error, SQLSTATE %s: %s",
					   unpack_sql_state(edata->sqlerrcode),
					   edata->message ? edata->message : "unknown error")));

	initStringInfo(&context);
	if (edata->context != NULL)
		appendStringInfo(&context, "%s\n", edata->context);
	appendStringInfo(&context,
					 "job_engine could not record this failure with the retry policy: %s (SQLSTATE %s); the job failed instead",
					 recording_error->message ? recording_error->message : "unknown error",
					 unpack_sql_state(recording_error->sqlerrcode));

	if (fallback_plan == NULL)
	{
		Oid			argtypes[7] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		fallback_plan = je_keep_plan(fallback_failure_sql, 7, argtypes);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(rec->job->job_id);
	values[1] = Int32GetDatum(rec->job->attempt);
	values[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[3] = text_or_null(edata->message, &nulls[3]);
	values[4] = text_or_null(edata->detail, &nulls[4]);
	values[5] = text_or_null(edata->hint, &nulls[5]);
	values[6] = CStringGetTextDatum(context.data);
	level = je_push_internal_settings(false);
	(void) je_push_lock_timeout(RECORD_LOCK_TIMEOUT_MS);
	rc = SPI_execute_plan(fallback_plan, values, nulls, false, 0);
	je_pop_internal_settings(level);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recording failure without the retry policy failed");
	if (SPI_processed != 1)
		return;					/* fenced: decided meanwhile */
	handler = text_column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	queue = text_column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	correlation_id = text_column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	consequence_error = je_in_subtransaction(fallback_consequences, rec);
	if (consequence_error != NULL)
	{
		ereport(WARNING,
				(errmsg("job_engine: could not apply the consequences of failed job " INT64_FORMAT ": %s",
						rec->job->job_id, consequence_error->message),
				 errdetail("Its compensation was not submitted and the jobs depending on it were not aborted.")));
		je_notify_transition(rec->job->job_id, "failed", handler, queue,
							 rec->job->attempt, correlation_id);
	}
}

/*
 * Records a failed attempt and applies the retry policy, inside the current
 * transaction and SPI connection, waiting at most RECORD_LOCK_TIMEOUT_MS
 * for the job's row.  If that fails (the policy cannot be computed, a
 * consequence cannot be applied), the attempt is still recorded failed with
 * its own error and the job fails (record_fallback): an error while
 * recording never replaces the job's real error.  If the job's row stayed
 * locked, the fallback would wait for it too: the error (55P03) is raised
 * for je_record_failure to leave the failure pending.
 */
void
je_record_failure_in_xact(ExecutionContext *job, ErrorData *edata)
{
	FailureRecord rec = {job, edata, NULL, false};

	rec.recording_error = je_in_subtransaction(record_with_policy, &rec);
	if (rec.recording_error != NULL &&
		rec.recording_error->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		ReThrowError(rec.recording_error);
	if (rec.recording_error != NULL)
		record_fallback(&rec);

	/*
	 * Logged once recorded, saying what follows.  A success fenced out by
	 * an abort (or recovery) that committed first had no error of its own:
	 * unrecordable_outcome would misname it.
	 */
	if (rec.recording_error != NULL || rec.recorded || edata != &unrecordable_outcome)
		je_log_failed_attempt(job, edata, rec.recording_error != NULL);
}

/*
 * Whether attempt `attempt` of job `job_id` is still the job's running one,
 * the fence of every record, asked before a handler starts when an abort
 * may have decided the job since it was claimed.
 */
bool
je_attempt_still_running(int64 job_id, int32 attempt)
{
	Datum		values[2] = {Int64GetDatum(job_id), Int32GetDatum(attempt)};

	if (running_plan == NULL)
	{
		Oid			argtypes[2] = {INT8OID, INT4OID};

		running_plan = je_keep_plan("SELECT 1 FROM job_engine._jobs"
									" WHERE id OPERATOR(pg_catalog.=) $1"
									"   AND state OPERATOR(pg_catalog.=) 'running'"
									"   AND attempts OPERATOR(pg_catalog.=) $2",
									2, argtypes);
	}
	if (je_execute_plan(running_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: looking up a claimed job failed");
	return SPI_processed == 1;
}

/*
 * Leaves the failure of `job` for crash recovery's periodic pass to record
 * (job_engine_internal._record_pending_outcomes()), when its row stayed locked.
 */
static void
leave_pending(ExecutionContext *job, ErrorData *edata)
{
	Datum		values[7];
	char		nulls[7];

	je_worker_begin_xact("job_engine: leaving a failure to record later");
	if (pending_plan == NULL)
	{
		Oid			argtypes[7] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		pending_plan = je_keep_plan("INSERT INTO job_engine._pending_outcomes"
									" (job_id, attempt, sqlstate, message, detail, hint, context)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
									7, argtypes);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(job->job_id);
	values[1] = Int32GetDatum(job->attempt);
	error_values(edata, &values[2], &nulls[2]);
	if (je_execute_plan(pending_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "job_engine: leaving a failure to record later failed");
	je_worker_end_xact(true);
	ereport(LOG,
			(errmsg("job_engine: job " INT64_FORMAT " attempt %d: its row stayed locked by another transaction; its failure will be recorded later",
					job->job_id, job->attempt),
			 errhint("An abort() of the job that is not yet committed holds the row.")));
}

/*
 * Records a failed attempt in a transaction of its own, claiming the next
 * jobs into `next` in the same transaction when it is not NULL.  If the
 * job's row stays locked, the failure is left pending (leave_pending) and
 * nothing is claimed.  If that transaction fails otherwise (its commit,
 * say), the failure is recorded once more without the retry policy, in
 * another.  Only if even that fails does the error escape, and end the
 * executor: crash recovery then records the attempt, and the log keeps the
 * handler's error.
 */
void
je_record_failure(ExecutionContext *job, ErrorData *edata, ClaimBuffer *next)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile recording_error = NULL;

	PG_TRY();
	{
		je_worker_begin_xact("job_engine: recording failure");
		je_record_failure_in_xact(job, edata);
		if (next != NULL)
			je_claim_chained(next);
		je_worker_end_xact(true);
	}
	PG_CATCH();
	{
		recording_error = je_take_error(cxt);
		AbortCurrentTransaction();
		if (next != NULL)
			next->njobs = 0;	/* the chained claim rolled back with it */
	}
	PG_END_TRY();

	if (recording_error != NULL && recording_error->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		leave_pending(job, edata);
	else if (recording_error != NULL)
	{
		FailureRecord rec = {job, edata, recording_error, false};

		je_worker_begin_xact("job_engine: recording failure");
		record_fallback(&rec);
		je_log_failed_attempt(job, edata, true);
		je_worker_end_xact(true);
	}
}

/*
 * The error recorded when an attempt's success could not be recorded
 * because its job left the running state inside the attempt itself.  The
 * record is fenced like any other: if an abort or recovery really got
 * there first, nothing is written.
 */
ErrorData *
je_unrecordable_outcome(void)
{
	ErrorData  *edata = &unrecordable_outcome;

	memset(edata, 0, sizeof(*edata));
	edata->elevel = ERROR;
	edata->sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
	edata->message = "the attempt changed the state of its own job";
	edata->hint = "A handler cannot abort or finish its own job; raise an error to fail the attempt.";
	return edata;
}

/*
 * job_engine_internal._record_success(job_id, attempt, result): the executor's
 * recording as a function, for tests that race it against abort().
 */
PG_FUNCTION_INFO_V1(job_engine_record_success);

Datum
job_engine_record_success(PG_FUNCTION_ARGS)
{
	bool		recorded;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	SPI_connect();
	recorded = je_record_success_in_xact(PG_GETARG_INT64(0), PG_GETARG_INT32(1),
										 PG_GETARG_DATUM(2), PG_ARGISNULL(2));
	SPI_finish();
	PG_RETURN_BOOL(recorded);
}

/* job_engine_internal._notify(job): the notification of a job row's current state. */
PG_FUNCTION_INFO_V1(job_engine_notify);

Datum
job_engine_notify(PG_FUNCTION_ARGS)
{
	HeapTupleHeader job = PG_GETARG_HEAPTUPLEHEADER(0);
	bool		isnull;
	Datum		d;
	char	   *correlation_id;

	d = GetAttributeByName(job, "correlation_id", &isnull);
	correlation_id = isnull ? NULL
		: DatumGetCString(DirectFunctionCall1(uuid_out, d));
	je_notify_transition(DatumGetInt64(GetAttributeByName(job, "id", &isnull)),
						 DatumGetCString(DirectFunctionCall1(enum_out,
															 GetAttributeByName(job, "state", &isnull))),
						 TextDatumGetCString(GetAttributeByName(job, "handler", &isnull)),
						 TextDatumGetCString(GetAttributeByName(job, "queue", &isnull)),
						 DatumGetInt32(GetAttributeByName(job, "attempts", &isnull)),
						 correlation_id);
	PG_RETURN_VOID();
}
