/*
 * wakeup.c
 *	  Commit-time wake-up of executors.
 *
 * submit() and friends call job_engine._wake_on_commit(n) in the submitting
 * transaction.  The count is kept in backend memory and, only when the
 * transaction commits (the jobs are then visible), up to n idle executors of
 * this database get their latches set.  An aborted transaction wakes nobody.
 * job_engine.poll_interval is only the safety net behind this.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "shmem.h"
#include "wakeup.h"

static int	pending_jobs = 0;

static void
je_wakeup_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (pending_jobs > 0)
				je_wake_idle_executors(MyDatabaseId, pending_jobs);
			pending_jobs = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_jobs = 0;
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

PG_FUNCTION_INFO_V1(job_engine_wake_on_commit);

Datum
job_engine_wake_on_commit(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(0);

	if (n > 0 && pending_jobs < INT_MAX - n)
		pending_jobs += n;
	PG_RETURN_VOID();
}
