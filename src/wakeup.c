/*
 * wakeup.c
 *	  Commit-time wake-up of executors.
 *
 * submit() and friends call job_engine._wake_on_commit(n) in the submitting
 * transaction.  The count is kept in backend memory and, only when the
 * transaction commits (the jobs are then visible), up to n idle executors of
 * this database get their latches set.  An aborted transaction wakes nobody.
 * job_engine.poll_interval is only the safety net behind this.
 *
 * abort() of a running job likewise interrupts its executor (through
 * job_engine._interrupt()) only once the transaction recording the abort
 * commits.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "shmem.h"
#include "wakeup.h"

static int	pending_jobs = 0;

/* Attempts to interrupt at commit; a handful per transaction at most. */
typedef struct PendingInterrupt
{
	int64		job_id;
	int32		attempt;
} PendingInterrupt;

static PendingInterrupt *pending_interrupts = NULL;
static int	npending_interrupts = 0;
static int	maxpending_interrupts = 0;

void
je_interrupt_on_commit(int64 job_id, int32 attempt)
{
	if (npending_interrupts == maxpending_interrupts)
	{
		int			newmax = Max(8, maxpending_interrupts * 2);

		pending_interrupts = pending_interrupts == NULL
			? MemoryContextAlloc(TopMemoryContext, newmax * sizeof(PendingInterrupt))
			: repalloc(pending_interrupts, newmax * sizeof(PendingInterrupt));
		maxpending_interrupts = newmax;
	}
	pending_interrupts[npending_interrupts].job_id = job_id;
	pending_interrupts[npending_interrupts].attempt = attempt;
	npending_interrupts++;
}

static void
je_wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (pending_jobs > 0)
				je_wake_idle_executors(MyDatabaseId, pending_jobs);
			for (int i = 0; i < npending_interrupts; i++)
				je_signal_executor(MyDatabaseId, pending_interrupts[i].job_id,
								   pending_interrupts[i].attempt);
			pending_jobs = 0;
			npending_interrupts = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_jobs = 0;
			npending_interrupts = 0;
			break;
		default:
			break;
	}
}

void
je_wakeup_init(void)
{
	RegisterXactCallback(je_wakeup_xact_callback, NULL);
}

/* Wakes up to n more idle executors when the transaction commits. */
void
je_wake_on_commit(int n)
{
	if (n > 0 && pending_jobs < INT_MAX - n)
		pending_jobs += n;
}

PG_FUNCTION_INFO_V1(job_engine_wake_on_commit);

Datum
job_engine_wake_on_commit(PG_FUNCTION_ARGS)
{
	je_wake_on_commit(PG_GETARG_INT32(0));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(job_engine_interrupt);

/*
 * Asks the executor running attempt (job_id, attempt) of this database to
 * stop, when the calling transaction commits (see above): abort() records
 * the outcome in that transaction, and an abort that rolls back must leave
 * the attempt alone.  Returns whether such an executor is running now.
 */
Datum
job_engine_interrupt(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	int32		attempt = PG_GETARG_INT32(1);

	je_interrupt_on_commit(job_id, attempt);
	PG_RETURN_BOOL(je_find_executor(MyDatabaseId, job_id, attempt) != NULL);
}
