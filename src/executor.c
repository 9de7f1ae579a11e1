/*
 * executor.c
 *	  The executor: claims runnable jobs of its database and runs their
 *	  attempts (attempt.c), one at a time.
 *
 * Loop: reset the latch, claim (its own committed transaction), run the
 * attempt if one was claimed, otherwise sleep until woken by a submit
 * (wakeup.c), until the next delayed job is due, or poll_interval passes.
 * Resetting the latch before claiming means a submit that commits while we
 * scan still wakes us: no wake-up is lost.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "claim.h"
#include "execution.h"
#include "internal_sql.h"
#include "settings.h"
#include "shmem.h"
#include "workers.h"

static ExecutorSlot *MySlot = NULL;
static SupervisorSlot *MySupervisor = NULL;
static SPIPlanPtr due_plan = NULL;

static void
executor_detach(int code, Datum arg)
{
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	if (MySlot->pid == MyProcPid)
		je_free_executor_slot(MySlot);
	LWLockRelease(JobEngineShmem->lock);
}

static void
executor_attach(int slotno)
{
	MySlot = &JobEngineShmem->executors[slotno];
	MySupervisor = &JobEngineShmem->supervisors[slotno / JobEngineShmem->workers_per_db];
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	MySlot->pid = MyProcPid;
	MySlot->last_pid = MyProcPid;
	MySlot->dboid = MyDatabaseId;
	MySlot->latch = MyLatch;
	MySlot->state = EXECUTOR_IDLE;
	MySlot->since = GetCurrentTimestamp();
	MySlot->abort_requested = false;
	LWLockRelease(JobEngineShmem->lock);
	before_shmem_exit(executor_detach, (Datum) 0);
}

/* Publishes what this executor is doing, for wake-ups and the workers view. */
void
je_executor_set_state(ExecutorState state, int64 job_id, int32 attempt)
{
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	MySlot->state = state;
	MySlot->job_id = job_id;
	MySlot->attempt = attempt;
	MySlot->since = GetCurrentTimestamp();
	MySlot->abort_requested = false;
	LWLockRelease(JobEngineShmem->lock);
}

bool
je_executor_abort_requested(void)
{
	bool		requested;

	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	requested = MySlot->abort_requested;
	LWLockRelease(JobEngineShmem->lock);
	return requested;
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
read_claimed_job(ClaimedJob *job, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	memset(job, 0, sizeof(*job));
	job->job_id = get_int64(tup, desc, 1, &isnull);
	job->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	job->fn_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
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

/*
 * Runs the claim (claim.c: one job, or a group of one queue) in the current
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
	nclaimed = je_claim(MyProcPid);
	if (nclaimed > 0)
	{
		MemoryContext old;

		/* For the supervisor's vacuum (vacuum.c); rolled-back claims count too. */
		pg_atomic_fetch_add_u64(&MySupervisor->jobs_claimed, nclaimed);

		MemoryContextReset(buf->cxt);
		old = MemoryContextSwitchTo(buf->cxt);
		buf->njobs = (int) Min(nclaimed, JE_MAX_GROUP);
		for (int i = 0; i < buf->njobs; i++)
			read_claimed_job(&buf->jobs[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		MemoryContextSwitchTo(old);
	}
	else if (due_in_ms != NULL)
	{
		bool		isnull;
		Datum		d;

		if (due_plan == NULL)
			due_plan = je_keep_plan("SELECT job_engine._next_due_in()", 0, NULL);
		rc = SPI_execute_plan(due_plan, NULL, NULL, true, 1);
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
static void
claim_next(ClaimBuffer *buf, long *due_in_ms)
{
	*due_in_ms = -1;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "job_engine: claiming");
	claim_in_xact(buf, due_in_ms);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Claims the next jobs inside the transaction recording an attempt, so the
 * claim rides on that commit.  A subtransaction keeps a failing claim from
 * failing the attempt; nothing is claimed while the executor is stopping.
 */
void
je_claim_chained(ClaimBuffer *next)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	next->njobs = 0;
	if (ProcDiePending || ConfigReloadPending)
		return;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		claim_in_xact(next, NULL);
		ReleaseCurrentSubTransaction();
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

void
job_engine_executor_main(Datum arg)
{
	Oid			dboid;
	ClaimBuffer *bufs;
	int			cur = 0;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	je_worker_handle_signals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	SetConfigOption("application_name", "job_engine executor", PGC_USERSET, PGC_S_SESSION);
	executor_attach(DatumGetInt32(arg));

	bufs = MemoryContextAllocZero(TopMemoryContext, 2 * sizeof(ClaimBuffer));
	for (int i = 0; i < 2; i++)
		bufs[i].cxt = AllocSetContextCreate(TopMemoryContext, "job_engine claimed jobs",
											ALLOCSET_DEFAULT_SIZES);

	if (!je_extension_installed())
		proc_exit(0);

	for (;;)
	{
		ClaimBuffer *buf = &bufs[cur];
		ClaimBuffer *next = &bufs[1 - cur];
		long		due_in_ms = -1;
		long		timeout;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		je_worker_process_reload();

		/* Jobs claimed along with the last outcome, or a claim of its own. */
		if (buf->njobs == 0)
			claim_next(buf, &due_in_ms);
		if (buf->njobs > 0)
		{
			if (buf->njobs == 1)
				je_run_attempt(&buf->jobs[0], next);
			else
				je_run_group(buf->jobs, buf->njobs, next);
			buf->njobs = 0;
			cur = 1 - cur;
			/* Autovacuum learns of our dead tuples only through this. */
			pgstat_report_stat(false);
			continue;
		}
		pgstat_report_stat(true);

		timeout = je_poll_interval_ms;
		if (due_in_ms >= 0 && due_in_ms < timeout)
			timeout = Max(due_in_ms, 1);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
	}
}
