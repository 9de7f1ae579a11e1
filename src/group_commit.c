/*
 * group_commit.c
 *	  Runs several claimed attempts of one queue in a single transaction
 *	  (configure_queue(queue, group_commit => N)).
 *
 * Each attempt runs in its own subtransaction, so it is atomic with its own
 * outcome: a handler error rolls back that subtransaction only, and its
 * failure is recorded in the shared transaction.  All outcomes commit
 * together, saving one WAL flush per attempt; the claim of the next jobs
 * rides on the same commit.  If the server dies before
 * that commit, every attempt of the group is lost with it; the claims had
 * committed, so crash recovery records them crashed and the retry policy
 * runs them again.  If the commit itself fails, each attempt is recorded as
 * failed with that error in a transaction of its own.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "execution.h"

/* Runs one attempt in a subtransaction; failures are recorded in the group. */
static void
run_in_subtransaction(ClaimedJob *job)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *edata = NULL;
	volatile bool fenced = false;

	je_begin_attempt(job);
	je_report_activity(job);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		bool		isnull;
		Datum		result = je_run_handler(job, &isnull);

		if (je_record_success(job, result, isnull))
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
		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		je_log_failure(job, edata);
		je_record_failure_in_xact(job, edata);
		FreeErrorData(edata);
	}
	else if (fenced)
		je_record_failure_in_xact(job, je_unrecordable_outcome());
	/* Nothing of this attempt may reach the next one in the group. */
	je_reset_session_state();
	je_current_job.active = false;
}

void
je_run_group(ClaimedJob *jobs, int njobs, ClaimBuffer *next)
{
	MemoryContext outer_cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		next->njobs = 0;
		for (int i = 0; i < njobs; i++)
			run_in_subtransaction(&jobs[i]);
		je_claim_chained(next);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(outer_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		next->njobs = 0;		/* a chained claim rolled back with it */
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		for (int i = 0; i < njobs; i++)
		{
			je_log_failure(&jobs[i], edata);
			je_record_failure(&jobs[i], edata, NULL);
		}
		FreeErrorData(edata);
	}
	for (int i = 0; i < njobs; i++)
		je_end_attempt(&jobs[i]);
}
