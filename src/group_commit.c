/*
 * group_commit.c
 *	  Runs several claimed attempts of one queue in a single transaction
 *	  (configure_queue(queue, group_commit => N)).
 *
 * Each attempt runs in its own subtransaction, so a handler error rolls back
 * that subtransaction only, and its failure is recorded in the shared
 * transaction.  Successes are recorded together, in one statement at the
 * end (a statement per job cost more than the jobs).  All outcomes commit
 * together, saving one WAL flush per attempt; the claim of the next jobs
 * rides on the same commit.  If the server dies before
 * that commit, every attempt of the group is lost with it; the claims had
 * committed, so crash recovery records them crashed and the retry policy
 * runs them again.  If the commit itself fails, each attempt is recorded as
 * failed with that error in a transaction of its own.
 *
 * A group has one owner (claim.c).  An attempt that leaves what the next
 * would inherit through the shared transaction or process (SET CONSTRAINTS,
 * a library loaded) ends the group: the jobs not started go back to
 * waiting (je_unclaim).
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "attempt.h"
#include "claim.h"
#include "execution_context.h"
#include "group_commit.h"
#include "outcome.h"
#include "shmem.h"
#include "worker.h"

/*
 * A success whose recording waits for the end of the group: the result, in
 * the group's memory.
 */
typedef struct PendingSuccess
{
	bool		pending;
	Datum		result;
	bool		isnull;
} PendingSuccess;

/*
 * Runs one attempt in a subtransaction; failures are recorded in the group.
 * With `pending` NULL a success is recorded at once, fenced; otherwise it is
 * kept in *pending, for the group's one statement (record_pending).
 *
 * With *check, or once some abort has committed since the claim (which
 * then sets *check for the rest of the group), the job is first looked up:
 * a job that is no longer running with this attempt must not have its
 * handler started.  The count of aborts is read after the attempt is
 * published as running, since an abort that commits later interrupts it
 * (shmem.c).
 *
 * Returns whether the group may go on with its next attempt.
 */
static bool
run_in_subtransaction(ExecutionContext *job, PendingSuccess *pending, bool *check)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	volatile bool fenced = false;
	bool		go_on;

	je_begin_attempt(job);
	*check = *check || je_executor_aborts_since_claim();
	if (*check && !je_attempt_still_running(job->job_id, job->attempt))
	{
		je_leave_context();
		return true;
	}
	je_report_activity(job);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		bool		isnull;
		Datum		result = je_run_handler(job, &isnull);

		if (pending != NULL)
		{
			/* A copy of our own: the handler's memory goes with it. */
			MemoryContextSwitchTo(cxt);
			pending->isnull = isnull;
			pending->result = isnull ? (Datum) 0
				: PointerGetDatum(PG_DETOAST_DATUM_COPY(result));
			pending->pending = true;
			ReleaseCurrentSubTransaction();
		}
		else if (je_record_success_in_xact(job->job_id, job->attempt, result, isnull))
			ReleaseCurrentSubTransaction();
		else
		{
			/* aborted meanwhile, or by the attempt itself: see attempt.c */
			RollbackAndReleaseCurrentSubTransaction();
			fenced = true;
		}
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		je_leave_handler();
		edata = je_take_error(cxt);
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		je_record_failure_in_xact(job, edata);
		FreeErrorData(edata);
	}
	else if (fenced)
		je_record_failure_in_xact(job, je_unrecordable_outcome());
	go_on = !je_attempt_ends_group();
	/* Nothing of this attempt may reach the next one in the group. */
	je_leave_context();
	return go_on;
}

/*
 * Records the group's pending successes in one statement.  False when some
 * job was decided meanwhile (an abort or recovery committed first): its
 * handler's work is already merged into the group's transaction, so the
 * group must not commit.
 */
static bool
record_pending(ExecutionContext *jobs, PendingSuccess *pending, int njobs)
{
	int64		ids[JE_MAX_GROUP];
	int32		attempts[JE_MAX_GROUP];
	Datum		results[JE_MAX_GROUP];
	bool		nulls[JE_MAX_GROUP];
	int			n = 0;

	for (int i = 0; i < njobs; i++)
	{
		if (!pending[i].pending)
			continue;
		ids[n] = jobs[i].job_id;
		attempts[n] = jobs[i].attempt;
		results[n] = pending[i].result;
		nulls[n] = pending[i].isnull;
		n++;
	}
	return n == 0 || je_record_successes_in_xact(ids, attempts, results, nulls, n) == (uint64) n;
}

/*
 * Fires the deferred triggers of the group's attempts, which queued them in
 * subtransactions, as their owner, within a timeout: an attempt of its own
 * fires them inside its handler's timeout (je_close_attempt_xact_state),
 * and here they must not hold the executor for as long as they like
 * either.  The handlers have spent their own time by now, so the triggers
 * get as long again as the longest timeout of the attempts (none if one
 * has none: triggers_timeout).  The timeout, like any error after the
 * attempts, fails the whole group; so does a trigger that caught its
 * cancel and returned, and the supervisor ends one that goes on regardless,
 * given their deadline as a handler's (je_executor_enter_deadline).  The
 * timeout is disarmed, and a cancel it left pending dropped, afterwards,
 * error or not, as after a handler (je_leave_handler).
 */
static void
fire_deferred_triggers(Oid owner, int timeout_ms)
{
	if (timeout_ms > 0)
	{
		enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
		je_executor_enter_deadline(TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms));
	}
	PG_TRY();
	{
		je_fire_deferred_triggers_as(owner);

		/*
		 * The timeout fired and a trigger caught its cancel: finishing later
		 * is no success, as for a handler (je_run_handler).
		 */
		if (timeout_ms > 0 && !get_timeout_active(STATEMENT_TIMEOUT))
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("the deferred triggers of the group ran past their deadline"),
					 errdetail("A trigger caught the cancel of their %d ms timeout and returned afterwards.",
							   timeout_ms),
					 errhint("Let the timeout end the trigger (do not catch query_canceled), or give the handlers a longer timeout.")));
	}
	PG_FINALLY();
	{
		je_leave_handler();
	}
	PG_END_TRY();
}

/* The timeout of the group's deferred triggers (fire_deferred_triggers). */
static int
triggers_timeout(ExecutionContext *jobs, int ran)
{
	int			timeout_ms = 0;

	for (int i = 0; i < ran; i++)
	{
		if (jobs[i].timeout_ms <= 0)
			return 0;
		timeout_ms = Max(timeout_ms, jobs[i].timeout_ms);
	}
	return timeout_ms;
}

/*
 * One transaction for the group.  With `batched`, successes are recorded
 * together at the end; returns false, having rolled everything back, when
 * that found a job decided meanwhile.  Otherwise (the group runs again)
 * each success is recorded in its subtransaction, as the fence requires,
 * and each job is looked up before its handler starts again.  In the
 * batched run a job is looked up only once some abort has committed since
 * the claim, which is rare.
 */
static bool
run_group_transaction(ExecutionContext *jobs, int njobs, ClaimBuffer *next, bool batched)
{
	MemoryContext outer_cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;
	volatile bool complete = true;

	PG_TRY();
	{
		PendingSuccess pending[JE_MAX_GROUP];
		bool		check = !batched;
		int			ran = 0;

		memset(pending, 0, sizeof(pending));
		je_worker_begin_xact(NULL);
		next->njobs = 0;
		/* None runs in a process that must end (a re-run after a library load). */
		while (ran < njobs && !je_session_retiring())
		{
			bool		go_on = run_in_subtransaction(&jobs[ran], batched ? &pending[ran] : NULL,
												 &check);

			ran++;
			if (!go_on)
				break;
		}
		if (ran < njobs)
			je_unclaim(jobs + ran, njobs - ran);
		if (ran > 0)
			fire_deferred_triggers(jobs[0].owner, triggers_timeout(jobs, ran));
		if (batched && !record_pending(jobs, pending, ran))
			complete = false;
		else if (ran == njobs)
			je_claim_chained(next);
		je_worker_end_xact(complete);
	}
	PG_CATCH();
	{
		edata = je_take_error(outer_cxt);
		AbortCurrentTransaction();
		next->njobs = 0;		/* a chained claim rolled back with it */
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		for (int i = 0; i < njobs; i++)
		{
			je_record_failure(&jobs[i], edata, NULL);
		}
		FreeErrorData(edata);
	}
	return complete;
}

/*
 * Runs the group with its successes recorded in one statement.  In the rare
 * case that a job of it was aborted or recovered meanwhile, that transaction
 * is rolled back whole and the group run again with each success recorded
 * (and fenced) in its own subtransaction: the handlers of the jobs still
 * running run again, and each job's work still commits at most once.
 */
void
je_run_group(ExecutionContext *jobs, int njobs, ClaimBuffer *next)
{
	if (!run_group_transaction(jobs, njobs, next, true))
		(void) run_group_transaction(jobs, njobs, next, false);
	for (int i = 0; i < njobs; i++)
		je_end_attempt(&jobs[i]);
}
