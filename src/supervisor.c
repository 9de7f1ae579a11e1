/*
 * supervisor.c
 *	  The per-database supervisor: waits for the extension to be installed,
 *	  keeps job_engine.max_workers executors running, recovers the attempts
 *	  of executors that died, and purges old jobs per job_engine.retention.
 *
 * State machine (one loop iteration every poll_interval or when woken):
 *
 *	  WAITING ── extension installed ──► RECOVERING ──► SERVING
 *	     ▲      at a version served                        │
 *	     └─── extension dropped, or at a version not served ┘
 *
 * RECOVERING marks every job of the database still 'running' as crashed
 * (recovery.c): no executor of ours is alive at that point, so no attempt
 * can be live.  While SERVING, an executor that exits is reaped through its
 * handle, the pid it had is remembered from its slot, and only that pid's
 * running jobs are recovered, before a replacement executor starts.  It
 * also terminates executors whose attempt ignores its abort or its deadline
 * (escalate), and records their attempts for what they are when it reaps
 * them.
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "dispatch.h"
#include "failure_log.h"
#include "recovery.h"
#include "running.h"
#include "settings.h"
#include "shmem.h"
#include "supervisor.h"
#include "vacuum.h"
#include "wait_events.h"
#include "worker.h"

#define EXECUTOR_RESTART_DELAY_MS 1000
#define PURGE_INTERVAL_MS (60 * 1000)
#define ORPHAN_INTERVAL_MS (5 * 1000)

static int	MyDbIndex = -1;
static BackgroundWorkerHandle **executor_handles = NULL;
static TimestampTz *executor_started = NULL;

/* The executor asked to give its slot to another database, or -1. */
static int	yielding = -1;

/* Per executor slot: the termination sent to its process, until reaped. */
static JeTermination *terminations = NULL;

static ExecutorSlot *
my_executor_slot(int i)
{
	return &JobEngineShmem->executors[MyDbIndex * JobEngineShmem->workers_per_db + i];
}

static void
purge_expired(void)
{
	static SPIPlanPtr plan = NULL;
	uint64		purged;
	Oid			argtypes[1] = {INT4OID};
	/* -1: the setting keeps jobs forever, but a queue's retention may not. */
	Datum		values[1] = {Int32GetDatum(je_retention_s > 0 ? je_retention_s : -1)};

	purged = je_worker_run_statement("job_engine: purging finished jobs", &plan,
									 "SELECT _purge_expired($1)", 1, argtypes, values);
	if (purged > 0)
		elog(DEBUG1, "job_engine: purged " UINT64_FORMAT " finished jobs", purged);
}

static bool
start_executor(int i)
{
	BackgroundWorker worker;
	int			slotno = MyDbIndex * JobEngineShmem->workers_per_db + i;
	ExecutorSlot *slot = my_executor_slot(i);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "job_engine", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "job_engine_executor_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "job_engine executor %d for %s",
			 i + 1, JobEngineShmem->supervisors[MyDbIndex].dbname);
	strlcpy(worker.bgw_type, "job_engine executor", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(slotno);
	memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	slot->state = EXECUTOR_STARTING;
	slot->dboid = MyDatabaseId;
	slot->pid = 0;
	slot->latch = NULL;
	slot->since = GetCurrentTimestamp();
	LWLockRelease(JobEngineShmem->lock);

	executor_started[i] = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&worker, &executor_handles[i]))
	{
		LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
		je_free_executor_slot(slot);
		LWLockRelease(JobEngineShmem->lock);
		executor_handles[i] = NULL;
		return false;
	}
	return true;
}

/*
 * Fair shares of the background worker slots.  When max_worker_processes
 * leaves too few slots for every database's max_workers executors, the
 * slots are shared out between the databases that want them (those whose
 * last try to start an executor, or their supervisor, found no free slot:
 * SupervisorSlot.starved): a database never gets ahead of a starved one by
 * more than one executor, so each gets one executor before any gets a
 * second, and so on.  Under JobEngineShmem->lock, for this database running
 * `mine` executors: whether it may start one more, and in *yield whether it
 * should give one up, because a starved database runs two or more fewer.
 */
static bool
fair_to_start(int mine, bool *yield)
{
	bool		may = true;

	*yield = false;
	for (int j = 0; j < JobEngineShmem->ndatabases; j++)
	{
		int			theirs;

		if (j == MyDbIndex || !JobEngineShmem->supervisors[j].starved)
			continue;
		theirs = je_executors_in_use(j);
		if (theirs < mine)
			may = false;
		if (theirs + 2 <= mine)
			*yield = true;
	}
	return may;
}

/*
 * Asks one executor to end so that a starved database can have its slot:
 * an idle one if there is, else a busy one, which ends after its attempt
 * (it claims no more meanwhile).  One at a time: the next is asked after
 * this one is reaped.  The caller holds JobEngineShmem->lock.
 */
static void
yield_executor(void)
{
	int			chosen = -1;

	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		ExecutorSlot copy;

		if (executor_handles[i] == NULL || my_executor_slot(i)->pid == 0)
			continue;
		je_read_executor_slot(my_executor_slot(i), &copy);
		if (chosen < 0 || copy.state == EXECUTOR_IDLE)
			chosen = i;
		if (copy.state == EXECUTOR_IDLE)
			break;
	}
	if (chosen < 0)
		return;
	my_executor_slot(chosen)->yield_requested = true;
	if (my_executor_slot(chosen)->latch)
		SetLatch(my_executor_slot(chosen)->latch);
	yielding = chosen;
}

/*
 * Says that this database runs fewer executors than configured for lack of
 * worker slots: when that starts, then once a minute while it lasts, and
 * once more when it is over.
 */
static void
report_shortage(bool short_of_slots, int running)
{
	static TimestampTz last_warned = 0;
	static bool was_short = false;
	const char *dbname = JobEngineShmem->supervisors[MyDbIndex].dbname;
	int			configured = JobEngineShmem->workers_per_db;

	/* For status(): short of slots until all run, not while one is replaced. */
	if (running >= configured)
		JobEngineShmem->supervisors[MyDbIndex].short_of_slots = false;
	else if (short_of_slots)
		JobEngineShmem->supervisors[MyDbIndex].short_of_slots = true;
	if (running >= configured)
	{
		if (was_short)
			ereport(LOG,
					(errmsg("job_engine: database \"%s\" runs all its %d executors again",
							dbname, configured)));
		was_short = false;
		return;
	}
	if (!short_of_slots ||
		(was_short && !TimestampDifferenceExceeds(last_warned, GetCurrentTimestamp(),
												  JE_SHORTAGE_WARNING_INTERVAL_MS)))
		return;
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("job_engine: database \"%s\" runs %d of its %d executors",
					dbname, running, configured),
			 errdetail("All max_worker_processes background worker slots are in use.  job_engine shares the slots it has between its databases: each gets one executor before any gets a second.  Said once a minute while it lasts."),
			 errhint("Raise max_worker_processes: job_engine needs one launcher, plus one supervisor and job_engine.max_workers executors per database, on top of other extensions' workers and the logical replication launcher.")));
	last_warned = GetCurrentTimestamp();
	was_short = true;
}

/*
 * Whether an executor started now could connect to this database.  After
 * ALTER DATABASE ... ALLOW_CONNECTIONS false it would die at once, to be
 * started again a second later: no executor is started then, which is said
 * once, and those already running carry on.
 */
static bool
executors_can_connect(void)
{
	static bool said = false;
	HeapTuple	tup;
	bool		allowed = true;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (HeapTupleIsValid(tup))
	{
		allowed = ((Form_pg_database) GETSTRUCT(tup))->datallowconn;
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	if (!allowed && !said)
		ereport(LOG,
				(errmsg("job_engine: database \"%s\" does not allow connections, starting no executors",
						JobEngineShmem->supervisors[MyDbIndex].dbname),
				 errdetail("The executors already running carry on; the others start once it allows connections again.")));
	said = !allowed;
	return allowed;
}

/*
 * Starts the executors that are missing, as far as the worker slots and the
 * other databases' fair shares allow, or gives one up to a starved database.
 */
static void
start_missing_executors(void)
{
	bool		short_of_slots = false;
	bool		no_slot = false;
	bool		yield;
	int			running;

	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		bool		fair;

		if (executor_handles[i] != NULL ||
			!TimestampDifferenceExceeds(executor_started[i], GetCurrentTimestamp(),
										EXECUTOR_RESTART_DELAY_MS))
			continue;
		if (!executors_can_connect())
			break;
		LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
		fair = fair_to_start(je_executors_in_use(MyDbIndex), &yield);
		LWLockRelease(JobEngineShmem->lock);
		if (!fair)
		{
			short_of_slots = true;
			break;
		}
		if (!start_executor(i))
		{
			short_of_slots = no_slot = true;
			break;
		}
	}

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	running = je_executors_in_use(MyDbIndex);
	/* Only a try that found no slot makes it starved, only a start ends that. */
	if (no_slot)
		JobEngineShmem->supervisors[MyDbIndex].starved = true;
	else if (!short_of_slots)
		JobEngineShmem->supervisors[MyDbIndex].starved = false;
	(void) fair_to_start(running, &yield);
	if (yield && yielding < 0)
		yield_executor();
	if (yielding >= 0)
		short_of_slots = true;
	LWLockRelease(JobEngineShmem->lock);
	report_shortage(short_of_slots, running);
}

/*
 * Reaps executors that have exited.  Their last pids are collected in
 * `dead` (returns how many) so their running attempts can be recovered;
 * those the supervisor terminated (escalate below) are also in `ended`
 * (*nended of them), for their attempts to be recorded first for what they
 * are.
 */
static int
reap_executors(int *dead, JeTermination *ended, int *nended)
{
	int			ndead = 0;

	*nended = 0;

	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		pid_t		pid;
		ExecutorSlot *slot = my_executor_slot(i);

		if (executor_handles[i] == NULL ||
			GetBackgroundWorkerPid(executor_handles[i], &pid) != BGWH_STOPPED)
			continue;
		pfree(executor_handles[i]);
		executor_handles[i] = NULL;

		LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
		if (slot->pid != 0)
			dead[ndead++] = slot->pid;	/* exited without detaching */
		dead[ndead++] = slot->last_pid;
		/* Retired to serve another owner: its replacement starts now. */
		if (slot->recycled)
			executor_started[i] = 0;
		slot->recycled = false;
		je_free_executor_slot(slot);
		LWLockRelease(JobEngineShmem->lock);
		if (terminations[i].pid != 0)
			ended[(*nended)++] = terminations[i];
		terminations[i].pid = 0;
		if (yielding == i)
			yielding = -1;
	}
	return ndead;
}

/* Whether some executor this supervisor terminated has not been reaped yet. */
static bool
terminations_pending(void)
{
	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		if (terminations[i].pid != 0)
			return true;
	}
	return false;
}

/*
 * An abort() cancels the attempt's handler, and so does its timeout.  A
 * handler that catches the cancel (a PL/pgSQL EXCEPTION WHEN query_canceled
 * block) would run on, so job_engine.abort_grace after the abort, or after
 * the deadline, its executor is terminated with SIGTERM, whose FATAL no
 * handler can catch: the attempt's transaction dies with the process.  Once
 * the process is reaped, an attempt past its deadline is recorded failed
 * (an aborted one was recorded by its abort), and the rest of its group,
 * rolled back with it, runs again (je_recover_terminated).  Code that never
 * checks for interrupts at all (a C loop without CHECK_FOR_INTERRUPTS)
 * ignores both signals; only a server restart stops it, and its outcome is
 * discarded when it returns.
 */
static void
escalate(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (je_abort_grace_ms <= 0)
		return;
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		ExecutorSlot seen;
		ExecutorSlot *slot = &seen;
		bool		ignored_abort;

		if (!je_executor_to_escalate(my_executor_slot(i), now, je_abort_grace_ms, &seen, &ignored_abort))
			continue;
		terminations[i].pid = slot->pid;
		terminations[i].job_id = slot->job_id;
		terminations[i].attempt = slot->attempt;
		terminations[i].past_deadline = !ignored_abort;
		terminations[i].deadline = slot->deadline;
		if (ignored_abort)
			ereport(LOG,
					(errmsg("job_engine: terminating executor %d: job " INT64_FORMAT " ignored its abort for %d ms",
							(int) slot->pid, slot->job_id, je_abort_grace_ms)));
		else
			ereport(LOG,
					(errmsg("job_engine: terminating executor %d: job " INT64_FORMAT " ran past its deadline by %d ms",
							(int) slot->pid, slot->job_id, je_abort_grace_ms)));
		kill(slot->pid, SIGTERM);
	}
	LWLockRelease(JobEngineShmem->lock);
}

static void
stop_executors(void)
{
	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
	{
		if (executor_handles[i] != NULL)
			TerminateBackgroundWorker(executor_handles[i]);
	}
}

/* Waits until no executor of this database is attached to a slot. */
static void
wait_for_executors_gone(void)
{
	for (;;)
	{
		bool		any = false;

		LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
		for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
		{
			ExecutorSlot *slot = my_executor_slot(i);

			if (slot->pid != 0 && kill(slot->pid, 0) == 0)
			{
				any = true;
				kill(slot->pid, SIGTERM);
			}
		}
		LWLockRelease(JobEngineShmem->lock);
		if (!any)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, je_wait_event(JE_WAIT_EXECUTORS_EXIT));
		ResetLatch(MyLatch);
		je_worker_exit_if_stopping();
		CHECK_FOR_INTERRUPTS();
	}
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	for (int i = 0; i < JobEngineShmem->workers_per_db; i++)
		je_free_executor_slot(my_executor_slot(i));
	LWLockRelease(JobEngineShmem->lock);
}

/* On exit (SIGTERM, FATAL): our executors go with us and the slot is freed. */
static void
supervisor_detach(int code, Datum arg)
{
	if (executor_handles)
		stop_executors();
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	if (JobEngineShmem->supervisors[MyDbIndex].pid == MyProcPid)
	{
		JobEngineShmem->supervisors[MyDbIndex].pid = 0;
		JobEngineShmem->supervisors[MyDbIndex].starved = false;
	}
	LWLockRelease(JobEngineShmem->lock);
}

/* Takes the supervisor slot of this database, or exits if it is taken. */
static void
supervisor_attach(void)
{
	SupervisorSlot *sup = &JobEngineShmem->supervisors[MyDbIndex];

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	if (sup->pid != 0 && sup->pid != MyProcPid && kill(sup->pid, 0) == 0)
	{
		LWLockRelease(JobEngineShmem->lock);
		proc_exit(0);
	}
	/*
	 * Started just before a command set the database aside (the launcher
	 * checks first, but not under this lock): leave it that command.
	 */
	if (sup->set_aside > 0)
	{
		LWLockRelease(JobEngineShmem->lock);
		proc_exit(0);
	}
	sup->pid = MyProcPid;
	sup->dboid = MyDatabaseId;
	sup->starved = false;		/* the launcher's: its supervisor has a slot now */
	LWLockRelease(JobEngineShmem->lock);
	/* Nobody kept the claim marks while no supervisor ran: rebuilt by a claim. */
	je_dispatch_attach(MyDbIndex);
	before_shmem_exit(supervisor_detach, (Datum) 0);
}

/* What a round of serving keeps from one round to the next. */
static bool serving = false;
static TimestampTz last_purge = 0;
static TimestampTz last_orphan_check = 0;
static int *dead;
static JeTermination *ended;

/*
 * The running jobs per queue that claims of a queue with a concurrency
 * limit compare with it (running.c), counted again when they cannot be
 * trusted: after a start, a TRUNCATE, a restore.
 */
static void
rebuild_running_counts(void)
{
	if (!je_running_rebuild_due())
		return;
	je_worker_begin_xact("job_engine: counting running jobs");
	je_running_rebuild();
	je_worker_end_xact(true);
}

/*
 * One round of SERVING: recovery, escalation, reaping, executors started,
 * orphans, vacuum and purge.  Run through je_worker_unless_dropped(): a
 * DROP EXTENSION that commits during the round ends it, and the next round
 * finds the extension dropped.
 */
static void
serve_round(void *arg)
{
	int			ndead;
	int			nended;

	if (!serving)
	{
		je_recover_crashed(NULL, 0, JobEngineShmem->supervisors[MyDbIndex].dbname);
		serving = true;
	}
	escalate();
	ndead = reap_executors(dead, ended, &nended);
	for (int i = 0; i < nended; i++)
		je_recover_terminated(&ended[i], JobEngineShmem->supervisors[MyDbIndex].dbname);
	if (ndead > 0)
		je_recover_crashed(dead, ndead, JobEngineShmem->supervisors[MyDbIndex].dbname);

	start_missing_executors();
	rebuild_running_counts();

	/*
	 * Not while a terminated executor may be gone but not yet reaped: its
	 * attempts would be taken for orphans, crashed.
	 */
	if (!terminations_pending() &&
		TimestampDifferenceExceeds(last_orphan_check, GetCurrentTimestamp(), ORPHAN_INTERVAL_MS))
	{
		je_recover_orphans(JobEngineShmem->supervisors[MyDbIndex].dbname);
		last_orphan_check = GetCurrentTimestamp();
	}
	/* Their length grows with the data: a stop cuts them short. */
	je_worker_interruptible(true);
	je_vacuum_jobs_if_due(&JobEngineShmem->supervisors[MyDbIndex]);
	je_flush_failure_log();
	if (TimestampDifferenceExceeds(last_purge, GetCurrentTimestamp(), PURGE_INTERVAL_MS))
	{
		purge_expired();
		last_purge = GetCurrentTimestamp();
	}
	je_worker_interruptible(false);
}

void
job_engine_supervisor_main(Datum arg)
{
	int			nworkers;

	MyDbIndex = DatumGetInt32(arg);
	je_worker_handle_signals();
	BackgroundWorkerInitializeConnection(JobEngineShmem->supervisors[MyDbIndex].dbname,
										 NULL, 0);
	SetConfigOption("application_name", "job_engine supervisor", PGC_USERSET, PGC_S_SESSION);
	supervisor_attach();

	nworkers = JobEngineShmem->workers_per_db;
	executor_handles = MemoryContextAllocZero(TopMemoryContext,
											  sizeof(BackgroundWorkerHandle *) * nworkers);
	executor_started = MemoryContextAllocZero(TopMemoryContext, sizeof(TimestampTz) * nworkers);
	terminations = MemoryContextAllocZero(TopMemoryContext, sizeof(JeTermination) * nworkers);
	ended = MemoryContextAlloc(TopMemoryContext, sizeof(JeTermination) * nworkers);
	dead = MemoryContextAlloc(TopMemoryContext, sizeof(int) * nworkers * 2);

	/* Executors of an earlier supervisor of this database must be gone. */
	wait_for_executors_gone();

	for (;;)
	{
		je_worker_exit_if_stopping();
		CHECK_FOR_INTERRUPTS();
		je_worker_process_reload();

		if (!je_extension_installed())
		{
			if (serving)
			{
				ereport(LOG, (errmsg("job_engine: extension dropped, or at a version not served, in database \"%s\"; stopping executors",
									 JobEngineShmem->supervisors[MyDbIndex].dbname)));
				stop_executors();
				wait_for_executors_gone();
				for (int i = 0; i < nworkers; i++)
				{
					executor_handles[i] = NULL;
					terminations[i].pid = 0;
				}
				yielding = -1;
				LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
				JobEngineShmem->supervisors[MyDbIndex].starved = false;
				LWLockRelease(JobEngineShmem->lock);
				serving = false;
			}
		}
		else
			(void) je_worker_unless_dropped(serve_round, NULL);

		pgstat_report_stat(true);

		/*
		 * At most a second: nothing wakes the supervisor when an attempt
		 * passes its deadline or ignores an abort, and escalation, orphan
		 * recovery and executor restarts must not wait for a long
		 * poll_interval, which is the executors' safety net, not ours.
		 */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(je_poll_interval_ms, 1000), je_wait_event(JE_WAIT_SUPERVISOR_MAIN));
		ResetLatch(MyLatch);
	}
}
