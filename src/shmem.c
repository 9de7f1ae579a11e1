/*
 * shmem.c
 *	  Allocates and initialises job_engine's shared memory, offers the few
 *	  operations other backends perform on it (waking and signalling
 *	  executors, the workers view), and keeps an executor's own slot.
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "dispatch.h"
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
	size = add_size(size, MAXALIGN(mul_size(mul_size(ndb, je_max_workers), sizeof(ExecutorSlot))));
	/* The claim marks of each database (dispatch.c), last. */
	size = add_size(size, je_dispatch_shmem_size(ndb));
	return size;
}

static void
je_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(je_shmem_size());
	RequestNamedLWLockTranche("job_engine", 1);
	je_dispatch_request_locks(je_database_count());
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
		for (int k = 0; k < ndb * je_max_workers; k++)
			SpinLockInit(&JobEngineShmem->executors[k].mutex);
		foreach(lc, names)
		{
			strlcpy(JobEngineShmem->supervisors[i].dbname,
					(char *) lfirst(lc), NAMEDATALEN);
			pg_atomic_init_u64(&JobEngineShmem->supervisors[i].jobs_claimed, 0);
			pg_atomic_init_u64(&JobEngineShmem->supervisors[i].aborts, 0);
			SpinLockInit(&JobEngineShmem->supervisors[i].failure_log.mutex);
			i++;
		}
	}
	je_dispatch_shmem_init((char *) JobEngineShmem->executors +
						   MAXALIGN(ndb * je_max_workers * sizeof(ExecutorSlot)), ndb, !found);
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
 * scanning when woken simply scans once more, so no wake-up is lost.  The
 * state is read without the slot's mutex: an executor publishes IDLE before
 * it takes the snapshot of its next claim, so one that this reads as busy
 * sees the submit that calls this.  Returns how many were woken.
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

/* Whether `slot` runs attempt (job_id, attempt) now.  The caller holds its mutex. */
static bool
slot_runs(ExecutorSlot *slot, int64 job_id, int32 attempt)
{
	return slot->state == EXECUTOR_BUSY && slot->job_id == job_id &&
		slot->attempt == attempt;
}

/*
 * The slot of the executor running attempt (job_id, attempt) in database
 * dboid, or NULL.  The executor may move on as soon as this returns; a
 * caller that acts on the slot holds JobEngineShmem->lock, so that it stays
 * the same process's, and checks the attempt again under the slot's mutex.
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
		bool		runs;

		if (slot->dboid != dboid || slot->pid == 0)
			continue;
		SpinLockAcquire(&slot->mutex);
		runs = slot_runs(slot, job_id, attempt);
		SpinLockRelease(&slot->mutex);
		if (runs)
			return slot;
	}
	return NULL;
}

/*
 * Interrupts attempt (job_id, attempt), once its abort has committed, if an
 * executor is running it: marks the slot with the attempt the abort is
 * meant for, then sends SIGUSR2, the executor's abort signal.  The signal is
 * only a nudge: the executor turns it into a query cancel only while the
 * handler of that very attempt runs (executor_abort_signal below), so a
 * signal that arrives late hits nothing else.  An abort that finds the
 * attempt's handler not started yet is taken when it starts
 * (je_executor_enter_handler).  Every such abort is also counted for the
 * database, so that an executor can tell whether a job it claimed may have
 * been decided before it started it (je_executor_aborts_since_claim).
 */
void
je_signal_executor(Oid dboid, int64 job_id, int32 attempt)
{
	ExecutorSlot *slot;

	if (JobEngineShmem == NULL)
		return;
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < JobEngineShmem->ndatabases; i++)
	{
		if (JobEngineShmem->supervisors[i].dboid == dboid)
			pg_atomic_fetch_add_u64(&JobEngineShmem->supervisors[i].aborts, 1);
	}
	slot = je_find_executor(dboid, job_id, attempt);
	if (slot != NULL)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		runs;

		/*
		 * Marked only if it still runs that attempt: a mark left on its next
		 * attempt would have the supervisor escalate against that one.
		 */
		SpinLockAcquire(&slot->mutex);
		runs = slot_runs(slot, job_id, attempt);
		if (runs)
		{
			slot->abort_requested = true;
			slot->abort_job_id = job_id;
			slot->abort_attempt = attempt;
			slot->abort_requested_at = now;
		}
		SpinLockRelease(&slot->mutex);
		if (runs)
			kill(slot->pid, SIGUSR2);
	}
	LWLockRelease(JobEngineShmem->lock);
}

/*
 * How many executor slots of database `dbindex` are taken (starting or
 * running).  The caller holds JobEngineShmem->lock.
 */
int
je_executors_in_use(int dbindex)
{
	int			n = 0;

	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[dbindex * JobEngineShmem->workers_per_db + i];
		bool		taken;

		SpinLockAcquire(&slot->mutex);
		taken = slot->state != EXECUTOR_FREE;
		SpinLockRelease(&slot->mutex);
		if (taken)
			n++;
	}
	return n;
}

/* Marks an executor slot unused.  The caller holds JobEngineShmem->lock. */
void
je_free_executor_slot(ExecutorSlot *slot)
{
	SpinLockAcquire(&slot->mutex);
	slot->state = EXECUTOR_FREE;
	SpinLockRelease(&slot->mutex);
	slot->pid = 0;
	slot->latch = NULL;
	slot->yield_requested = false;
}

/*
 * SIGUSR2 in an executor: an abort() committed.  It becomes a query cancel
 * only if the handler of the attempt it was meant for is running now; a
 * signal meant for an attempt whose handler has ended, or that arrives
 * after the executor moved on, is dropped.  The executor writes its own
 * slot's fields before it changes attempts and clears any pending cancel
 * after (je_executor_set_state, je_executor_leave_handler), so a cancel
 * taken here can only ever hit the attempt it was meant for.
 */
static void
executor_abort_signal(SIGNAL_ARGS)
{
	int			save_errno = errno;
	volatile ExecutorSlot *slot = MySlot;

	if (slot != NULL && slot->in_handler && slot->abort_requested &&
		slot->abort_job_id == slot->job_id && slot->abort_attempt == slot->attempt)
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
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
	MySlot->recycled = false;
	LWLockRelease(JobEngineShmem->lock);
	je_executor_set_state(EXECUTOR_IDLE, 0, 0, InvalidOid);
	before_shmem_exit(executor_detach, (Datum) 0);
	pqsignal(SIGUSR2, executor_abort_signal);
}

/*
 * Publishes what this executor is doing, for wake-ups and the workers view.
 * A cancel still pending belongs to the attempt being left: it is dropped,
 * after the slot says that attempt is over.
 */
void
je_executor_set_state(ExecutorState state, int64 job_id, int32 attempt, Oid job_owner)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&MySlot->mutex);
	MySlot->in_handler = false;
	MySlot->deadline = 0;
	MySlot->state = state;
	MySlot->job_id = job_id;
	MySlot->attempt = attempt;
	MySlot->job_owner = job_owner;
	MySlot->since = now;
	MySlot->abort_requested = false;
	MySlot->escalated = false;
	SpinLockRelease(&MySlot->mutex);
	QueryCancelPending = false;
}

/*
 * The current attempt's handler starts, with its deadline (0: none), which
 * the supervisor enforces against a handler that ignores its timeout.  An
 * abort of the attempt that committed before this point found no handler
 * to cancel: it is taken now, at the caller's next CHECK_FOR_INTERRUPTS().
 */
void
je_executor_enter_handler(TimestampTz deadline)
{
	bool		aborted;

	SpinLockAcquire(&MySlot->mutex);
	MySlot->in_handler = true;
	MySlot->deadline = deadline;
	aborted = MySlot->abort_requested && MySlot->abort_job_id == MySlot->job_id &&
		MySlot->abort_attempt == MySlot->attempt;
	SpinLockRelease(&MySlot->mutex);
	if (aborted)
	{
		QueryCancelPending = true;
		InterruptPending = true;
	}
}

/*
 * The handler has ended (returned or failed).  A cancel that its abort left
 * pending is dropped: it was for the handler, and must not fail the
 * recording of the attempt's outcome, or what comes after.
 */
void
je_executor_leave_handler(void)
{
	SpinLockAcquire(&MySlot->mutex);
	MySlot->in_handler = false;
	MySlot->deadline = 0;
	SpinLockRelease(&MySlot->mutex);
	QueryCancelPending = false;
}

/*
 * A group's deferred triggers start firing, with their deadline, which the
 * supervisor enforces as a handler's: a trigger can catch the cancel of its
 * timeout and go on.  They are no attempt's handler, so in_handler stays
 * false and an abort still finds nothing to cancel here, as before they
 * started.  je_executor_leave_handler() clears the deadline.
 */
void
je_executor_enter_deadline(TimestampTz deadline)
{
	SpinLockAcquire(&MySlot->mutex);
	MySlot->deadline = deadline;
	SpinLockRelease(&MySlot->mutex);
}

bool
je_executor_abort_requested(void)
{
	bool		requested;

	SpinLockAcquire(&MySlot->mutex);
	requested = MySlot->abort_requested;
	SpinLockRelease(&MySlot->mutex);
	return requested;
}

/*
 * For the supervisor, which holds JobEngineShmem->lock: whether the executor
 * of `slot` runs an attempt that ignored its abort, or a handler past its
 * deadline, by more than `grace_ms` at `now`, and was not escalated against
 * yet.  If so, marks it escalated and leaves a copy of the slot in *seen
 * and, in *ignored_abort, which of the two it is.
 */
bool
je_executor_to_escalate(ExecutorSlot *slot, TimestampTz now, int grace_ms,
						ExecutorSlot *seen, bool *ignored_abort)
{
	bool		past_deadline = false;

	*ignored_abort = false;
	if (slot->pid == 0)
		return false;
	SpinLockAcquire(&slot->mutex);
	if (slot->state == EXECUTOR_BUSY && !slot->escalated)
	{
		*ignored_abort = slot->abort_requested &&
			TimestampDifferenceExceeds(slot->abort_requested_at, now, grace_ms);
		/* deadline is 0 outside a handler and a group's deferred triggers */
		past_deadline = slot->deadline != 0 &&
			TimestampDifferenceExceeds(slot->deadline, now, grace_ms);
		if (*ignored_abort || past_deadline)
			slot->escalated = true;
	}
	memcpy(seen, slot, sizeof(ExecutorSlot));
	SpinLockRelease(&slot->mutex);
	return *ignored_abort || past_deadline;
}

/*
 * A consistent copy of the attempt fields of `slot`, for a reader that
 * holds JobEngineShmem->lock.
 */
void
je_read_executor_slot(ExecutorSlot *slot, ExecutorSlot *copy)
{
	SpinLockAcquire(&slot->mutex);
	memcpy(copy, slot, sizeof(ExecutorSlot));
	SpinLockRelease(&slot->mutex);
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

/*
 * Whether this executor's supervisor asked it to end, to give its worker
 * slot to another database (supervisor.c).  Read without the lock: only the
 * supervisor sets it, and a late read only delays the exit by one loop.
 */
bool
je_executor_yield_requested(void)
{
	return MySlot != NULL && MySlot->yield_requested;
}

/* The database's abort count when this executor last claimed jobs. */
static uint64 aborts_at_claim = 0;

/*
 * For the supervisor's vacuum (vacuum.c); rolled-back claims count too.
 * Called inside the claim's transaction, before it commits: an abort of a
 * job claimed there can only commit, and be counted, after that.
 */
void
je_executor_count_claims(uint64 nclaimed)
{
	pg_atomic_fetch_add_u64(&MySupervisor->jobs_claimed, nclaimed);
	aborts_at_claim = pg_atomic_read_u64(&MySupervisor->aborts);
}

/*
 * Whether some running job of this database has been aborted since this
 * executor's last claim: if not, none of the jobs it claimed then has been,
 * and they need no look at the table before they start.
 */
bool
je_executor_aborts_since_claim(void)
{
	return pg_atomic_read_u64(&MySupervisor->aborts) != aborts_at_claim;
}

PG_FUNCTION_INFO_V1(job_engine_workers);

/*
 * One row per live executor, read from shared memory, as the caller may see
 * it: the rule of pg_stat_activity and of the jobs view together.  A role
 * with the privileges of pg_read_all_stats (pg_monitor, superusers) sees
 * every database's executors and what they run.  Any other role sees the
 * executors of the current database only (pid, state, since, as status()
 * and metrics() count them, and as a client checking who sent a
 * notification needs), and the job and attempt of a busy one only when it
 * sees that job in job_engine.jobs: a member of the job's owner, or of
 * pg_database_owner.  Other databases' work and other roles' job ids are
 * none of its business.
 */
Datum
job_engine_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			caller = GetUserId();
	bool		sees_all;
	bool		sees_database_jobs;
	ExecutorSlot *copies;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (JobEngineShmem == NULL)
		PG_RETURN_VOID();

	/* Copied under the lock; the role checks read catalogs, after it. */
	n = JobEngineShmem->ndatabases * JobEngineShmem->workers_per_db;
	copies = palloc(n * sizeof(ExecutorSlot));
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
		je_read_executor_slot(&JobEngineShmem->executors[i], &copies[i]);
	LWLockRelease(JobEngineShmem->lock);

	sees_all = has_privs_of_role(caller, ROLE_PG_READ_ALL_STATS);
	sees_database_jobs = sees_all || has_privs_of_role(caller, ROLE_PG_DATABASE_OWNER);
	for (int i = 0; i < n; i++)
	{
		ExecutorSlot *slot = &copies[i];
		Datum		values[6];
		bool		nulls[6] = {false};
		bool		sees_job;

		if (slot->state == EXECUTOR_FREE || slot->pid == 0)
			continue;
		if (!sees_all && slot->dboid != MyDatabaseId)
			continue;
		sees_job = slot->state == EXECUTOR_BUSY &&
			(sees_database_jobs || is_member_of_role(caller, slot->job_owner));
		values[0] = Int32GetDatum(slot->pid);
		values[1] = ObjectIdGetDatum(slot->dboid);
		values[2] = CStringGetTextDatum(je_executor_state_name(slot->state));
		values[3] = Int64GetDatum(slot->job_id);
		values[4] = Int32GetDatum(slot->attempt);
		values[5] = TimestampTzGetDatum(slot->since);
		nulls[3] = nulls[4] = !sees_job;
		nulls[5] = (slot->since == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copies);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(job_engine_short_of_worker_slots);

/*
 * job_engine_internal._short_of_worker_slots(): whether this database's
 * supervisor runs fewer executors than configured for lack of background
 * worker slots (or of its fair share of them), until all run again: what a
 * shortfall in status() means, as opposed to an executor being replaced,
 * which the workers view also leaves out for a moment.
 */
Datum
job_engine_short_of_worker_slots(PG_FUNCTION_ARGS)
{
	bool		short_of_slots = false;

	if (JobEngineShmem == NULL)
		PG_RETURN_BOOL(false);
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	for (int i = 0; i < JobEngineShmem->ndatabases; i++)
	{
		if (JobEngineShmem->supervisors[i].dboid == MyDatabaseId)
			short_of_slots = JobEngineShmem->supervisors[i].short_of_slots;
	}
	LWLockRelease(JobEngineShmem->lock);
	PG_RETURN_BOOL(short_of_slots);
}
