/*
 * recovery.c
 *	  The supervisor's recovery of crashed attempts: the C side of the SQL
 *	  functions job_engine_internal._recover_crashed() and _recover_orphans(), which
 *	  record the attempts as crashed and apply the retry policy.
 *
 * A claim commits before its handler starts, so a job left 'running' with
 * no live worker is evidence of a crash.  The supervisor (supervisor.c)
 * calls these at start (every running job: no executor of ours is alive),
 * when it reaps an exited executor (that pid's jobs), and every few
 * seconds for jobs whose worker process is gone without an executor exit
 * having been seen.  An executor the supervisor terminated itself (an
 * attempt that ignored its abort or its deadline) has its attempts
 * recorded for what they are first (je_recover_terminated).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "execution_context.h"
#include "failure_log.h"
#include "internal_sql.h"
#include "outcome.h"
#include "metrics.h"
#include "recovery.h"
#include "settings.h"
#include "wakeup.h"
#include "worker.h"

/*
 * The running attempts of the dead executors (all when $1 is NULL), read
 * before crash recovery records them, to log each one after
 * (log_crashed).  Unlocked: an attempt decided meanwhile by someone else
 * reads as not recorded then, and is not logged.
 */
static const char *running_sql =
"SELECT r.id, r.attempts, r.worker_pid FROM job_engine._jobs r"
" WHERE r.state OPERATOR(pg_catalog.=) 'running'"
"   AND ($1 IS NULL OR r.worker_pid OPERATOR(pg_catalog.=) ANY ($1))";

/* A running attempt found before recovery. */
typedef struct CrashedAttempt
{
	ExecutionContext job;
	int32		pid;
} CrashedAttempt;

/* The attempts running_sql finds, in the current transaction. */
static List *
running_attempts(Datum pids, bool all)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT4ARRAYOID};
	List	   *found = NIL;

	if (plan == NULL)
		plan = je_keep_plan(running_sql, 1, argtypes);
	if (je_execute_plan(plan, &pids, all ? "n" : " ", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: looking up the attempts of exited executors failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		CrashedAttempt *a = palloc0(sizeof(CrashedAttempt));
		bool		isnull;

		a->job.job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		a->job.attempt = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		a->pid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
		found = lappend(found, a);
	}
	return found;
}

/* Logs each attempt of `attempts` that recovery recorded crashed. */
static void
log_crashed(List *attempts)
{
	ListCell   *lc;

	foreach(lc, attempts)
	{
		CrashedAttempt *a = lfirst(lc);
		ErrorData	edata;

		memset(&edata, 0, sizeof(edata));
		edata.elevel = ERROR;
		edata.message = psprintf("executor process %d exited while the attempt was running", a->pid);
		je_log_crashed_attempt(&a->job, &edata);
	}
}

/*
 * Records the running attempts of the given dead executor pids as crashed
 * and applies the retry policy (NULL array: every running job), logging
 * each.
 */
void
je_recover_crashed(int *pids, int npids, const char *dbname)
{
	static SPIPlanPtr recover_plan = NULL;
	Oid			argtypes[1] = {INT4ARRAYOID};
	Datum		values[1];
	uint64		recovered = 0;
	Datum	   *elems = palloc(sizeof(Datum) * Max(npids, 1));
	const char *all = pids == NULL ? "n" : " ";
	List	   *attempts;
	bool		isnull;

	for (int i = 0; i < npids; i++)
		elems[i] = Int32GetDatum(pids[i]);
	values[0] = PointerGetDatum(construct_array(elems, npids, INT4OID, 4, true, TYPALIGN_INT));

	/* For the metrics: the failures this transaction records crashed. */
	je_metrics_failures_are_crashes();
	je_worker_begin_xact(pids == NULL ? "job_engine: recovering attempts after restart"
						 : "job_engine: recovering attempts of exited executors");
	attempts = running_attempts(values[0], pids == NULL);
	if (recover_plan == NULL)
		recover_plan = je_keep_plan("SELECT _recover_crashed($1)", 1, argtypes);
	if (je_execute_plan(recover_plan, values, all, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recovering attempts of exited executors failed");
	if (SPI_processed == 1)
		recovered = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (recovered > 0)
		log_crashed(attempts);
	je_worker_end_xact(true);
	if (recovered > 0)
		ereport(LOG,
				(errmsg("job_engine: recorded " UINT64_FORMAT " interrupted attempt(s) as crashed in database \"%s\"",
						recovered, dbname)));
}

/*
 * Records as crashed the running jobs whose worker process is gone without
 * this supervisor having seen an executor exit: a session that claimed and
 * disconnected, or jobs restored from a dump taken while they ran.
 */
void
je_recover_orphans(const char *dbname)
{
	static SPIPlanPtr plan = NULL;
	uint64		recovered;

	je_metrics_failures_are_crashes();
	recovered = je_worker_run_statement("job_engine: recovering orphaned attempts", &plan,
										"SELECT _recover_orphans()", 0, NULL, NULL);
	if (recovered > 0)
		ereport(LOG,
				(errmsg("job_engine: recorded " UINT64_FORMAT " orphaned attempt(s) as crashed in database \"%s\"",
						recovered, dbname),
				 errdetail("Their worker processes no longer exist.")));
}

/*
 * The attempts of executor $1, other than attempt ($4, $5) it was
 * terminated for: the rest of its group, rolled back with it.  Each
 * attempt is recorded failed with 40000 and message $2, detail $3; its job
 * runs again at once, with one more attempt allowed, so the lost attempt
 * costs it nothing.  Fenced like every record: only jobs still running on
 * that executor.  A job whose row another transaction holds (an abort()
 * left open) is not waited for: crash recovery records it later.
 */
static const char *rolled_back_sql =
"WITH j AS ("
"    UPDATE job_engine._jobs x"
"       SET state = 'retrying', worker_pid = NULL, run_at = pg_catalog.clock_timestamp(),"
"           max_attempts = x.max_attempts OPERATOR(pg_catalog.+) 1,"
"           last_error = pg_catalog.format('%s (SQLSTATE 40000, attempt %s)', $2, x.attempts)"
"     WHERE x.id IN (SELECT r.id FROM job_engine._jobs r"
"                     WHERE r.state OPERATOR(pg_catalog.=) 'running'"
"                       AND r.worker_pid OPERATOR(pg_catalog.=) $1"
"                       AND NOT (r.id OPERATOR(pg_catalog.=) $4 AND r.attempts OPERATOR(pg_catalog.=) $5)"
"                       FOR UPDATE SKIP LOCKED)"
"    RETURNING x.id, x.attempts, x.handler, x.queue, x.correlation_id),"
" a AS ("
"    UPDATE job_engine._attempts a"
"       SET outcome = 'failed', finished_at = pg_catalog.clock_timestamp(),"
"           sqlstate = '40000', message = $2, detail = $3"
"      FROM j"
"     WHERE a.job_id OPERATOR(pg_catalog.=) j.id"
"       AND a.attempt OPERATOR(pg_catalog.=) j.attempts)"
"SELECT j.id, j.attempts, j.handler, j.queue, j.correlation_id FROM j";

/* The attempt an executor was terminated for because it ran past its deadline. */
static void
record_past_deadline(const JeTermination *ended)
{
	ExecutionContext job;
	ErrorData	edata;

	memset(&job, 0, sizeof(job));
	job.job_id = ended->job_id;
	job.attempt = ended->attempt;
	memset(&edata, 0, sizeof(edata));
	edata.elevel = ERROR;
	edata.sqlerrcode = ERRCODE_QUERY_CANCELED;
	edata.message = psprintf("attempt ran past its deadline: executor process %d was terminated",
							 (int) ended->pid);
	edata.detail = psprintf("The deadline passed at %s and the handler was still running "
							"job_engine.abort_grace (%d ms) later, ignoring the cancel of its timeout.",
							timestamptz_to_str(ended->deadline), je_abort_grace_ms);
	edata.hint = "Let the timeout end the handler (do not catch query_canceled), or give it a longer timeout.";
	je_record_failure(&job, &edata, NULL);
}

/*
 * Records the attempts of an executor the supervisor terminated, once it
 * has been reaped: the attempt it was terminated for, if that ran past its
 * deadline (an aborted one was recorded by its abort), and the attempts of
 * the rest of its group, which were not crashed but rolled back with it.
 * Whatever these leave running, je_recover_crashed records as usual.
 */
void
je_recover_terminated(const JeTermination *ended, const char *dbname)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {INT4OID, TEXTOID, TEXTOID, INT8OID, INT4OID};
	Datum		values[5];
	char	   *message;
	uint64		nrequeued;

	if (ended->past_deadline)
		record_past_deadline(ended);

	message = ended->past_deadline
		? psprintf("attempt rolled back with its group: executor process %d was terminated because job " INT64_FORMAT " ran past its deadline",
				   (int) ended->pid, ended->job_id)
		: psprintf("attempt rolled back with its group: executor process %d was terminated because job " INT64_FORMAT " ignored its abort",
				   (int) ended->pid, ended->job_id);
	values[0] = Int32GetDatum(ended->pid);
	values[1] = CStringGetTextDatum(message);
	values[2] = CStringGetTextDatum("The attempt's work was rolled back with the transaction of its group. "
									"The job runs again at once, and the lost attempt does not count: "
									"its max_attempts is one higher.");
	values[3] = Int64GetDatum(ended->job_id);
	values[4] = Int32GetDatum(ended->attempt);

	je_worker_begin_xact("job_engine: recording the group of a terminated executor");
	if (plan == NULL)
		plan = je_keep_plan(rolled_back_sql, 5, argtypes);
	if (je_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recording the group of a terminated executor failed");
	nrequeued = SPI_processed;
	for (uint64 i = 0; i < nrequeued; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		je_notify_transition(DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)), "retrying",
							 SPI_getvalue(tup, desc, 3), SPI_getvalue(tup, desc, 4),
							 DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)),
							 SPI_getvalue(tup, desc, 5));
	}
	je_wake_on_commit((int) nrequeued);
	je_worker_end_xact(true);
	if (nrequeued > 0)
		ereport(LOG,
				(errmsg("job_engine: " UINT64_FORMAT " attempt(s) rolled back with the group of terminated executor %d in database \"%s\" run again",
						nrequeued, (int) ended->pid, dbname)));
}
