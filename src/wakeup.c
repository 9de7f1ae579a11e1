/*
 * wakeup.c
 *	  Commit-time wake-up of executors.
 *
 * submit() and friends call job_engine_internal._wake_on_commit(n) in the submitting
 * transaction.  The count is kept in backend memory and, only when the
 * transaction commits (the jobs are then visible), up to n idle executors of
 * this database get their latches set.  An aborted transaction wakes nobody.
 * job_engine.poll_interval is only the safety net behind this.
 *
 * abort() of a running job likewise interrupts its executor (through
 * job_engine_internal._interrupt()) only once the transaction recording the abort
 * commits.  Each pending interrupt belongs to the subtransaction that noted
 * it: rolling that back (ROLLBACK TO SAVEPOINT, a PL/pgSQL exception block)
 * drops it, as it undoes the abort's records; committing it hands it to the
 * parent.  A transaction with pending interrupts cannot be prepared for
 * two-phase commit: nothing would be left to send them when it commits.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "dispatch.h"
#include "settings.h"
#include "shmem.h"
#include "wakeup.h"

static int	pending_jobs = 0;

/* Attempts to interrupt at commit; a handful per transaction at most. */
typedef struct PendingInterrupt
{
	int64		job_id;
	int32		attempt;
	int			nest_level;		/* of the subtransaction that noted it */
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
	pending_interrupts[npending_interrupts].nest_level = GetCurrentTransactionNestLevel();
	npending_interrupts++;
}

/*
 * Ends the subtransaction at the current nest level for the pending
 * interrupts: those it noted (and its children handed it) go to its parent
 * if it commits, and are dropped if it rolls back.  They are noted in
 * order, so the subtransaction's own are the last ones.
 */
static void
je_wakeup_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	je_dispatch_subxact_event(event);
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			for (int i = 0; i < npending_interrupts; i++)
			{
				if (pending_interrupts[i].nest_level >= level)
					pending_interrupts[i].nest_level = level - 1;
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			while (npending_interrupts > 0 &&
				   pending_interrupts[npending_interrupts - 1].nest_level >= level)
				npending_interrupts--;
			break;
		default:
			break;
	}
}

static void
je_wakeup_xact_callback(XactEvent event, void *arg)
{
	/* The claim marks first: a woken executor must find the new jobs. */
	je_dispatch_xact_event(event);
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
		case XACT_EVENT_PRE_PREPARE:
			if (npending_interrupts > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that aborted a running job"),
						 errdetail("The job's executor is interrupted when the abort commits, which a prepared transaction cannot tell it."),
						 errhint("Abort running jobs in a transaction that commits without two-phase commit.")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* The jobs a prepared transaction submits are found by polling. */
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
	RegisterSubXactCallback(je_wakeup_subxact_callback, NULL);
}

/* Wakes up to n more idle executors when the transaction commits. */
void
je_wake_on_commit(int n)
{
	if (n > 0 && pending_jobs < INT_MAX - n)
		pending_jobs += n;
}

/*
 * Work made runnable in a database that job_engine.databases does not list
 * waits for ever: say so, once per session, at the first submit (CREATE
 * EXTENSION says it too, but a session may never have seen that).  The
 * setting takes a restart, so the answer holds for the session.
 */
static void
warn_if_unserved(void)
{
	static bool checked = false;
	char	   *dbname;

	if (checked)
		return;
	checked = true;
	dbname = get_database_name(MyDatabaseId);
	if (dbname == NULL || je_serves_database(dbname))
		return;
	ereport(WARNING,
			(errmsg("job_engine does not serve database \"%s\"", dbname),
			 errdetail("job_engine.databases is '%s': jobs submitted here are stored but do not run.",
					   je_databases ? je_databases : ""),
			 errhint("Add the database's name, as pg_database spells it, to job_engine.databases and restart the server.")));
}

PG_FUNCTION_INFO_V1(job_engine_wake_on_commit);

Datum
job_engine_wake_on_commit(PG_FUNCTION_ARGS)
{
	warn_if_unserved();
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

PG_FUNCTION_INFO_V1(job_engine_written_in_this_transaction);

/*
 * Whether a row version with this xmin was written by the calling
 * transaction (or one of its subtransactions), which has not committed yet:
 * wait() on a job this transaction created, or changed and so holds locked,
 * would wait for nothing, as no executor may claim the job before then.
 */
Datum
job_engine_written_in_this_transaction(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TransactionIdIsCurrentTransactionId(DatumGetTransactionId(PG_GETARG_DATUM(0))));
}
