/*
 * shmem.c
 *	  Allocates and initialises job_engine's shared memory, offers the few
 *	  operations other backends perform on it (waking and signalling
 *	  executors, the workers view), and keeps an executor's own slot.
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "settings.h"
#include "shmem.h"

JobEngineShared *JobEngineShmem = NULL;

/* In an executor: its own slot and its supervisor's. */
static ExecutorSlot *MySlot = NULL;
static SupervisorSlot *MySupervisor = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
je_shmem_size(void)
{
	int			ndb = je_database_count();
	Size		size = MAXALIGN(sizeof(JobEngineShared));

	size = add_size(size, MAXALIGN(mul_size(ndb, sizeof(SupervisorSlot))));
	size = add_size(size, mul_size(mul_size(ndb, je_max_workers), sizeof(ExecutorSlot)));
	return size;
}

static void
je_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(je_shmem_size());
	RequestNamedLWLockTranche("job_engine", 1);
}

static void
je_shmem_startup(void)
{
	bool		found;
	int			ndb = je_database_count();

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	JobEngineShmem = ShmemInitStruct("job_engine", je_shmem_size(), &found);
	if (!found)
	{
		char	   *base = (char *) JobEngineShmem;
		List	   *names = je_database_list();
		ListCell   *lc;
		int			i = 0;

		memset(JobEngineShmem, 0, je_shmem_size());
		JobEngineShmem->lock = &(GetNamedLWLockTranche("job_engine"))->lock;
		JobEngineShmem->ndatabases = ndb;
		JobEngineShmem->workers_per_db = je_max_workers;
		JobEngineShmem->supervisors = (SupervisorSlot *)
			(base + MAXALIGN(sizeof(JobEngineShared)));
		JobEngineShmem->executors = (ExecutorSlot *)
			((char *) JobEngineShmem->supervisors +
			 MAXALIGN(ndb * sizeof(SupervisorSlot)));
		foreach(lc, names)
		{
			strlcpy(JobEngineShmem->supervisors[i].dbname,
					(char *) lfirst(lc), NAMEDATALEN);
			pg_atomic_init_u64(&JobEngineShmem->supervisors[i].jobs_claimed, 0);
			i++;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
je_shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = je_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = je_shmem_startup;
}

const char *
je_executor_state_name(ExecutorState state)
{
	switch (state)
	{
		case EXECUTOR_FREE:
			return "free";
		case EXECUTOR_STARTING:
			return "starting";
		case EXECUTOR_IDLE:
			return "idle";
		case EXECUTOR_BUSY:
			return "busy";
	}
	return "unknown";
}

/*
 * Sets the latches of up to `count` idle executors of database `dboid`.
 * Idle covers "sleeping" and "about to look for work": an executor that is
 * scanning when woken simply scans once more, so no wake-up is lost.
 * Returns how many were woken.
 */
int
je_wake_idle_executors(Oid dboid, int count)
{
	int			woken = 0;
	int			n;

	if (JobEngineShmem == NULL || count <= 0)
		return 0;

	n = JobEngineShmem->ndatabases * JobEngineShmem->workers_per_db;
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	for (int i = 0; i < n && woken < count; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[i];

		if (slot->dboid == dboid && slot->state == EXECUTOR_IDLE && slot->latch)
		{
			SetLatch(slot->latch);
			woken++;
		}
	}
	LWLockRelease(JobEngineShmem->lock);
	return woken;
}

/*
 * The slot of the executor running attempt (job_id, attempt) in database
 * dboid, or NULL.  The caller holds JobEngineShmem->lock if it needs the
 * answer to stay true.
 */
ExecutorSlot *
je_find_executor(Oid dboid, int64 job_id, int32 attempt)
{
	int			n;

	if (JobEngineShmem == NULL)
		return NULL;
	n = JobEngineShmem->ndatabases * JobEngineShmem->workers_per_db;
	for (int i = 0; i < n; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[i];

		if (slot->dboid == dboid && slot->state == EXECUTOR_BUSY &&
			slot->job_id == job_id && slot->attempt == attempt && slot->pid != 0)
			return slot;
	}
	return NULL;
}

/*
 * Interrupts attempt (job_id, attempt) if an executor is still running it:
 * marks the slot so the executor knows the cancel came from abort(), then
 * sends it the query-cancel signal.
 */
void
je_signal_executor(Oid dboid, int64 job_id, int32 attempt)
{
	ExecutorSlot *slot;

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	slot = je_find_executor(dboid, job_id, attempt);
	if (slot != NULL)
	{
		slot->abort_requested = true;
		slot->abort_requested_at = GetCurrentTimestamp();
		slot->abort_escalated = false;
		kill(slot->pid, SIGINT);
	}
	LWLockRelease(JobEngineShmem->lock);
}

/* Marks an executor slot unused.  The caller holds JobEngineShmem->lock. */
void
je_free_executor_slot(ExecutorSlot *slot)
{
	slot->state = EXECUTOR_FREE;
	slot->pid = 0;
	slot->latch = NULL;
}

static void
executor_detach(int code, Datum arg)
{
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	if (MySlot->pid == MyProcPid)
		je_free_executor_slot(MySlot);
	LWLockRelease(JobEngineShmem->lock);
}

/* Attaches this executor process to its slot, until it exits. */
void
je_executor_attach(int slotno)
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
	MySlot->recycled = false;
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

/*
 * Says that this executor exits on purpose, to be replaced at once: its
 * supervisor reads the mark when it reaps the process.
 */
void
je_executor_mark_recycled(void)
{
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	MySlot->recycled = true;
	LWLockRelease(JobEngineShmem->lock);
}

/* For the supervisor's vacuum (vacuum.c); rolled-back claims count too. */
void
je_executor_count_claims(uint64 nclaimed)
{
	pg_atomic_fetch_add_u64(&MySupervisor->jobs_claimed, nclaimed);
}

PG_FUNCTION_INFO_V1(job_engine_workers);

/* One row per live executor, read from shared memory. */
Datum
job_engine_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (JobEngineShmem == NULL)
		PG_RETURN_VOID();

	n = JobEngineShmem->ndatabases * JobEngineShmem->workers_per_db;
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[i];
		Datum		values[6];
		bool		nulls[6] = {false};

		if (slot->state == EXECUTOR_FREE || slot->pid == 0)
			continue;
		values[0] = Int32GetDatum(slot->pid);
		values[1] = ObjectIdGetDatum(slot->dboid);
		values[2] = CStringGetTextDatum(je_executor_state_name(slot->state));
		values[3] = Int64GetDatum(slot->job_id);
		values[4] = Int32GetDatum(slot->attempt);
		values[5] = TimestampTzGetDatum(slot->since);
		nulls[3] = nulls[4] = (slot->state != EXECUTOR_BUSY);
		nulls[5] = (slot->since == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(JobEngineShmem->lock);
	PG_RETURN_VOID();
}
