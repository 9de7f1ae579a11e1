/*
 * failure_log.c
 *	  The server log line of each failed, crashed or aborted attempt,
 *	  written once the attempt's outcome is recorded, and the bound on how
 *	  many such lines a database writes.
 *
 * A line names the job, its handler and database, the attempt, the
 * error's SQLSTATE (none for a crash, which has none) and message, and
 * what follows, read from the job's row in the recording transaction:
 * "retrying at <time>", "giving up after N attempts", or the reason given
 * to abort().  It is written at job_engine.log_failures.
 *
 * When a dependency is down every attempt fails, and a line each would
 * flood the log.  So each database writes at most
 * job_engine.log_failures_limit lines in a window of FAILURE_LOG_WINDOW_MS, shared by
 * its executors and supervisor (FailureLogWindow, in its SupervisorSlot),
 * plus the first line of each owner that had none in the window, for
 * FAILURE_LOG_OWNERS owners: one role's failing jobs, which any role may
 * submit, must not hide every failure of the others'.
 * The failures past the limit are only counted; the first line after the
 * window, or the supervisor's periodic pass (je_flush_failure_log) if no
 * failure comes, says how many were not logged.  job_engine.attempts keeps
 * every one of them: only the log is bounded.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "execution_context.h"
#include "failure_log.h"
#include "internal_sql.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

#define FAILURE_LOG_WINDOW_MS (10 * 1000)
/* The longest handler message a line quotes, bytes (attempts keep it whole). */
#define FAILURE_LOG_MESSAGE_MAX 2048

/* What the recording decided, from the job's row. */
typedef struct RecordedFailure
{
	int64		job_id;
	bool		found;
	char	   *state;
	char	   *handler;
	int32		attempts;
	int32		max_attempts;
	TimestampTz run_at;
	char	   *abort_reason;	/* NULL: none given */
	Oid			owner;
} RecordedFailure;

static SPIPlanPtr decision_plan = NULL;

/* The slot of this process's database, NULL if none is served here. */
static SupervisorSlot *
database_slot(void)
{
	if (JobEngineShmem == NULL)
		return NULL;
	for (int i = 0; i < JobEngineShmem->ndatabases; i++)
	{
		if (JobEngineShmem->supervisors[i].dboid == MyDatabaseId)
			return &JobEngineShmem->supervisors[i];
	}
	return NULL;
}

/*
 * The line saying how many failures of the window that opened at `since`
 * were not logged.
 */
static void
log_unlogged(SupervisorSlot *sup, uint64 unlogged, TimestampTz since)
{
	long		secs;
	int			usecs;

	TimestampDifference(since, GetCurrentTimestamp(), &secs, &usecs);
	ereport(je_failure_log_level,
			(errmsg("job_engine: " UINT64_FORMAT " further failed attempt(s) in database \"%s\" not logged in the last %ld s",
					unlogged, sup->dbname, secs + (usecs > 0 ? 1 : 0)),
			 errdetail("At most job_engine.log_failures_limit (%d) failure lines are logged per database every %d s; job_engine.attempts records every attempt.",
					   je_failure_log_limit, FAILURE_LOG_WINDOW_MS / 1000),
			 errhidestmt(true), errhidecontext(true)));
}

/* Whether window `w` (locked) logged a line of `owner`. */
static bool
owner_logged(FailureLogWindow *w, Oid owner)
{
	for (int i = 0; i < w->nowners; i++)
	{
		if (w->owners[i] == owner)
			return true;
	}
	return false;
}

/*
 * Whether one more failure line of this database, of a job of `owner`, may
 * be written now: under the limit, or the owner's first in the window (see
 * the top); if not, it is counted.  A window that has passed is closed
 * first: what it did not log is reported (log_unlogged) and a new one opens.
 */
static bool
admit_line(SupervisorSlot *sup, Oid owner)
{
	FailureLogWindow *w = &sup->failure_log;
	TimestampTz now = GetCurrentTimestamp();
	uint64		unlogged = 0;
	TimestampTz since = 0;
	bool		first_of_owner;
	bool		admit;

	SpinLockAcquire(&w->mutex);
	if (w->window_start == 0 ||
		TimestampDifferenceExceeds(w->window_start, now, FAILURE_LOG_WINDOW_MS))
	{
		unlogged = w->unlogged;
		since = w->window_start;
		w->window_start = now;
		w->logged = 0;
		w->unlogged = 0;
		w->nowners = 0;
	}
	first_of_owner = w->nowners < FAILURE_LOG_OWNERS && !owner_logged(w, owner);
	admit = w->logged < je_failure_log_limit || first_of_owner;
	if (first_of_owner)
		w->owners[w->nowners++] = owner;
	if (admit)
		w->logged++;
	else
		w->unlogged++;
	SpinLockRelease(&w->mutex);

	if (unlogged > 0)
		log_unlogged(sup, unlogged, since);
	return admit;
}

/*
 * The supervisor's periodic pass: reports the failures a window that has
 * passed did not log, when no failure since has done so, and closes it.
 */
void
je_flush_failure_log(void)
{
	SupervisorSlot *sup = database_slot();
	FailureLogWindow *w;
	uint64		unlogged = 0;
	TimestampTz since = 0;

	if (sup == NULL || je_failure_log_level == 0 ||
		!message_level_is_interesting(je_failure_log_level))
		return;
	w = &sup->failure_log;
	SpinLockAcquire(&w->mutex);
	if (w->window_start != 0 &&
		TimestampDifferenceExceeds(w->window_start, GetCurrentTimestamp(), FAILURE_LOG_WINDOW_MS))
	{
		unlogged = w->unlogged;
		since = w->window_start;
		w->window_start = 0;
		w->logged = 0;
		w->unlogged = 0;
		w->nowners = 0;
	}
	SpinLockRelease(&w->mutex);
	if (unlogged > 0)
		log_unlogged(sup, unlogged, since);
}

static char *
column_or_null(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/* Reads what the recording decided into a RecordedFailure (arg). */
static void
read_decision(void *arg)
{
	RecordedFailure *rec = arg;
	Datum		values[1] = {Int64GetDatum(rec->job_id)};
	bool		isnull;

	if (decision_plan == NULL)
	{
		Oid			argtypes[1] = {INT8OID};

		decision_plan = je_keep_plan("SELECT x.state::pg_catalog.text, x.handler, x.attempts,"
									 "       x.max_attempts, x.run_at, x.abort_reason, x.owner"
									 "  FROM job_engine._jobs x WHERE x.id OPERATOR(pg_catalog.=) $1",
									 1, argtypes);
	}
	if (je_execute_plan(decision_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: reading a failed job's state failed");
	rec->found = SPI_processed == 1;
	if (!rec->found)
		return;
	rec->state = column_or_null(1);
	rec->handler = column_or_null(2);
	rec->attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	rec->max_attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	rec->run_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	rec->abort_reason = column_or_null(6);
	rec->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull));
}

/*
 * What follows the attempt, as the line says it, and whether it was
 * aborted.  `policy_failed`: the retry policy could not be applied and the
 * job failed instead (outcome.c's fallback).
 */
static const char *
decision_text(RecordedFailure *rec, int32 attempt, ErrorData *edata, bool policy_failed,
			  bool *aborted)
{
	*aborted = false;
	if (!rec->found)
		return "not recorded: the job no longer exists";
	if (rec->attempts != attempt)
		return psprintf("not recorded: the job is %s, at attempt %d", rec->state, rec->attempts);
	if (strcmp(rec->state, "retrying") == 0)
		return psprintf("retrying at %s", timestamptz_to_str(rec->run_at));
	if (strcmp(rec->state, "aborted") == 0)
	{
		*aborted = true;
		return rec->abort_reason != NULL
			? psprintf("aborted by job_engine.abort(): %s", rec->abort_reason)
			: "aborted by job_engine.abort() with no reason given";
	}
	if (strcmp(rec->state, "failed") == 0)
	{
		/*
		 * A crash is retried while attempts remain, so a crashed job that
		 * failed with attempts left was not given the policy; one that used
		 * up its attempts was.
		 */
		if (policy_failed || (edata->sqlerrcode == 0 && attempt < rec->max_attempts))
			return psprintf("giving up after %d attempt(s): the retry policy could not be applied",
							attempt);
		if (attempt >= rec->max_attempts)
			return psprintf("giving up after %d attempt(s)", attempt);
		return psprintf("giving up after %d attempt(s): the handler does not retry SQLSTATE %s",
						attempt, unpack_sql_state(edata->sqlerrcode));
	}
	return psprintf("not recorded: the job is %s", rec->state);
}

/*
 * The line of attempt `job`, which failed with `edata` (crashed when its
 * SQLSTATE is 0), once recorded.
 */
static void
log_attempt(ExecutionContext *job, ErrorData *edata, bool policy_failed)
{
	SupervisorSlot *sup;
	RecordedFailure rec;
	ErrorData  *lookup_error;
	const char *decision;
	char	   *dbname;
	bool		crashed = edata->sqlerrcode == 0;
	bool		aborted = false;
	const char *message;

	if (je_failure_log_level == 0 || !message_level_is_interesting(je_failure_log_level))
		return;
	sup = database_slot();
	memset(&rec, 0, sizeof(rec));
	rec.job_id = job->job_id;

	/*
	 * A crash is logged only if recovery recorded it, which the job's row
	 * tells; other lines are admitted first, so that a flood costs no
	 * look-up.
	 */
	lookup_error = crashed ? je_in_subtransaction(read_decision, &rec) : NULL;
	if (crashed && (lookup_error != NULL || !rec.found || rec.attempts != job->attempt ||
					strcmp(rec.state, "running") == 0))
		return;
	/* Recovery's attempts were not claimed here: their owner is the row's. */
	if (sup != NULL && je_failure_log_limit > 0 &&
		!admit_line(sup, crashed ? rec.owner : job->owner))
		return;
	if (!crashed)
		lookup_error = je_in_subtransaction(read_decision, &rec);
	if (lookup_error != NULL)
		decision = psprintf("what follows is unknown: %s", lookup_error->message);
	else
		decision = decision_text(&rec, job->attempt, edata, policy_failed, &aborted);

	dbname = get_database_name(MyDatabaseId);
	message = edata->message != NULL ? edata->message : "unknown error";
	/* The line's end says what follows: a long message is cut, not the line. */
	if (strlen(message) > FAILURE_LOG_MESSAGE_MAX)
		message = psprintf("%s...", pnstrdup(message, pg_mbcliplen(message, strlen(message),
																	  FAILURE_LOG_MESSAGE_MAX)));
	/* Written when the recording commits; not at all if it rolls back. */
	je_worker_log_at_commit(je_failure_log_level,
							psprintf("job_engine: job " INT64_FORMAT " (handler %s, database \"%s\") attempt %d %s: %s%s%s%s; %s",
									 job->job_id,
									 rec.handler != NULL ? rec.handler : (job->handler != NULL ? job->handler : "?"),
									 dbname != NULL ? dbname : "?",
									 job->attempt, crashed ? "crashed" : aborted ? "aborted" : "failed",
									 crashed ? "" : "SQLSTATE ",
									 crashed ? "" : unpack_sql_state(edata->sqlerrcode),
									 crashed ? "" : ": ",
									 message,
									 decision));
}

/*
 * Logs failed attempt `job` with its error, once its outcome is recorded
 * in the current transaction and SPI connection (not read-only: the
 * lookup must see the recording), unless the database's limit is reached
 * (then it is only counted).  `policy_failed`: the retry policy could not
 * be applied and the job failed instead (outcome.c's fallback).  A line
 * that cannot say what follows says why instead.
 */
void
je_log_failed_attempt(ExecutionContext *job, ErrorData *edata, bool policy_failed)
{
	log_attempt(job, edata, policy_failed);
}

/*
 * Logs attempt `job`, which crash recovery has just recorded crashed in the
 * current transaction, as je_log_failed_attempt does; `edata` has the
 * message only.  An attempt recovery did not record (decided meanwhile, or
 * left for a later round) is not logged.
 */
void
je_log_crashed_attempt(ExecutionContext *job, ErrorData *edata)
{
	Assert(edata->sqlerrcode == 0);
	log_attempt(job, edata, false);
}
