/*
 * executor.c
 *	  The executor: claims runnable jobs of its database (claim.c) and runs
 *	  their attempts, one at a time (attempt.c) or a group of one queue in
 *	  one transaction (group_commit.c).
 *
 * Loop: reset the latch, claim (its own committed transaction), run the
 * attempt if one was claimed, otherwise sleep until woken by a submit
 * (wakeup.c), until the next delayed job is due, or poll_interval passes.
 * Resetting the latch before claiming means a submit that commits while we
 * scan still wakes us: no wake-up is lost.
 *
 * An executor serves one owner in its lifetime (execution_context.c).  It
 * exits, marked for an immediate restart, when its claim meets another
 * owner's job (the claim is rolled back) or an attempt loaded a library.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "attempt.h"
#include "claim.h"
#include "execution_context.h"
#include "executor.h"
#include "group_commit.h"
#include "settings.h"
#include "shmem.h"
#include "wait_events.h"
#include "worker.h"

/* Ends this executor so that a fresh one takes its place at once. */
static void
retire(void)
{
	elog(DEBUG1, "job_engine: executor %d ends: %s", MyProcPid, je_session_retire_reason());
	je_executor_mark_recycled();
	proc_exit(0);
}

typedef struct ClaimStep
{
	ClaimBuffer *buf;
	long	   *due_in_ms;
} ClaimStep;

static void
claim_step(void *arg)
{
	ClaimStep  *step = arg;

	je_claim_next(step->buf, step->due_in_ms);
}

void
job_engine_executor_main(Datum arg)
{
	Oid			dboid;
	ClaimBuffer *bufs;
	int			cur = 0;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	je_worker_handle_signals();
	je_session_before_connect();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	SetConfigOption("application_name", "job_engine executor", PGC_USERSET, PGC_S_SESSION);
	je_executor_attach(DatumGetInt32(arg));
	/* Outcomes' notifications must not serialize the executors' commits. */
	je_worker_defer_notifications();

	bufs = MemoryContextAllocZero(TopMemoryContext, 2 * sizeof(ClaimBuffer));
	for (int i = 0; i < 2; i++)
		bufs[i].cxt = AllocSetContextCreate(TopMemoryContext, "job_engine claimed jobs",
											ALLOCSET_DEFAULT_SIZES);

	if (!je_extension_installed())
		proc_exit(0);
	je_session_start();

	for (;;)
	{
		ClaimBuffer *buf = &bufs[cur];
		ClaimBuffer *next = &bufs[1 - cur];
		long		due_in_ms = -1;
		long		timeout;

		ResetLatch(MyLatch);
		je_worker_exit_if_stopping();
		CHECK_FOR_INTERRUPTS();
		je_worker_process_reload();

		/* Its slot goes to another database (supervisor.c), once idle. */
		if (buf->njobs == 0 && je_executor_yield_requested())
		{
			elog(DEBUG1, "job_engine: executor %d ends: its worker slot goes to another database",
				 MyProcPid);
			proc_exit(0);
		}

		/*
		 * Jobs claimed along with the last outcome, or a claim of its own;
		 * a stop asked for during the claim rolls it back (claim.c).
		 */
		if (buf->njobs == 0)
		{
			ClaimStep	step = {buf, &due_in_ms};

			/* Its supervisor stops the executors of a dropped extension. */
			if (!je_worker_unless_dropped(claim_step, &step))
				proc_exit(0);
		}
		if (buf->njobs > 0)
		{
			/* A stop cuts the attempts short: they are recorded crashed. */
			je_worker_interruptible(true);
			if (buf->njobs == 1)
				je_run_attempt(&buf->jobs[0], next);
			else
				je_run_group(buf->jobs, buf->njobs, next);
			je_worker_interruptible(false);
			buf->njobs = 0;
			cur = 1 - cur;
			if (je_session_retiring())
				retire();
			/* Autovacuum learns of our dead tuples only through this. */
			pgstat_report_stat(false);
			continue;
		}
		if (je_session_retiring())
			retire();			/* another owner's job is waiting */
		pgstat_report_stat(true);

		timeout = je_poll_interval_ms;
		if (due_in_ms >= 0 && due_in_ms < timeout)
			timeout = Max(due_in_ms, 1);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, je_wait_event(JE_WAIT_EXECUTOR_IDLE));
	}
}
