/*
 * shmem.h
 *	  Shared state of job_engine's workers.
 *
 * One SupervisorSlot per entry of job_engine.databases and max_workers
 * ExecutorSlots per supervisor.  Supervisor i owns executor slots
 * [i * max_workers, (i + 1) * max_workers).  A slot's latch lets any
 * backend wake its process.
 *
 * JobEngineShmem->lock protects the supervisor slots and which process an
 * executor slot belongs to (pid, last_pid, dboid, latch, recycled,
 * yield_requested, which its executor reads without the lock).  The
 * fields of the attempt an executor runs (from state on) change
 * several times per attempt: the executor writes them holding only its
 * slot's spinlock, `mutex`, so that executors never queue on a shared lock
 * for their own bookkeeping.  Anyone else reads or writes them holding
 * JobEngineShmem->lock (which keeps the slot's process the same) and,
 * while the process may run, the mutex.  The one reader without either is
 * an executor's own abort signal handler (shmem.c), which reads its own
 * slot.
 */
#ifndef JOB_ENGINE_SHMEM_H
#define JOB_ENGINE_SHMEM_H

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

typedef enum ExecutorState
{
	EXECUTOR_FREE = 0,			/* no process */
	EXECUTOR_STARTING,			/* registered, process not attached yet */
	EXECUTOR_IDLE,				/* looking for work or sleeping */
	EXECUTOR_BUSY				/* running an attempt */
} ExecutorState;

typedef struct ExecutorSlot
{
	/* under JobEngineShmem->lock */
	pid_t		pid;
	pid_t		last_pid;		/* survives exit: crash recovery needs it */
	Oid			dboid;
	Latch	   *latch;
	bool		recycled;		/* exited to serve another owner: restart at once */
	bool		yield_requested;	/* its supervisor gives its worker slot to
									 * another database: exit when idle */

	/* the attempt: under mutex (see above) */
	slock_t		mutex;
	ExecutorState state;
	int64		job_id;			/* valid when BUSY */
	int32		attempt;
	Oid			job_owner;		/* valid when BUSY: who may see job_id */
	TimestampTz since;			/* when the state last changed */
	bool		in_handler;		/* the attempt's handler is running */
	TimestampTz deadline;		/* while in_handler, or a group's deferred
								 * triggers fire: their timeout, 0 none */
	bool		abort_requested;	/* an abort() of (abort_job_id, abort_attempt) committed */
	int64		abort_job_id;	/* the attempt the abort was meant for */
	int32		abort_attempt;
	TimestampTz abort_requested_at;	/* when; the supervisor escalates */
	bool		escalated;		/* the supervisor sent SIGTERM */
} ExecutorSlot;

/* The owners whose first failed attempt of a window is logged past the bound. */
#define FAILURE_LOG_OWNERS 16

/*
 * The failed-attempt lines of one database's current window (failure_log.c):
 * how many were logged and how many only counted since window_start (0: no
 * window open), and the owners of the jobs it logged (the first
 * FAILURE_LOG_OWNERS of them).
 */
typedef struct FailureLogWindow
{
	slock_t		mutex;
	TimestampTz window_start;
	int			logged;
	uint64		unlogged;
	int			nowners;
	Oid			owners[FAILURE_LOG_OWNERS];
} FailureLogWindow;

typedef struct SupervisorSlot
{
	char		dbname[NAMEDATALEN];
	pid_t		pid;
	Oid			dboid;
	int			set_aside;		/* backends running a command that needs the
								 * database to itself: do not restart */
	bool		starved;		/* short of executors (or of its supervisor)
								 * for lack of a worker slot at its last try */
	bool		short_of_slots; /* runs fewer executors than configured for
								 * lack of worker slots (or its fair share of
								 * them), until all run again: status() */
	pg_atomic_uint64 jobs_claimed;	/* by this database's executors, ever */
	pg_atomic_uint64 aborts;	/* committed aborts of running jobs, ever */
	FailureLogWindow failure_log;	/* its executors' and supervisor's lines */
} SupervisorSlot;

typedef struct JobEngineShared
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			ndatabases;
	int			workers_per_db;
	SupervisorSlot *supervisors;	/* ndatabases entries */
	ExecutorSlot *executors;	/* ndatabases * workers_per_db entries */
} JobEngineShared;

extern JobEngineShared *JobEngineShmem;

extern void je_shmem_install_hooks(void);
extern const char *je_executor_state_name(ExecutorState state);
extern int	je_wake_idle_executors(Oid dboid, int count);
extern ExecutorSlot *je_find_executor(Oid dboid, int64 job_id, int32 attempt);
extern void je_signal_executor(Oid dboid, int64 job_id, int32 attempt);
extern void je_free_executor_slot(ExecutorSlot *slot);
extern void je_read_executor_slot(ExecutorSlot *slot, ExecutorSlot *copy);
extern int	je_executors_in_use(int dbindex);
extern bool je_executor_to_escalate(ExecutorSlot *slot, TimestampTz now, int grace_ms,
									ExecutorSlot *seen, bool *ignored_abort);

/* In an executor process: its own slot. */
extern void je_executor_attach(int slotno);
extern void je_executor_set_state(ExecutorState state, int64 job_id, int32 attempt,
								  Oid job_owner);
extern void je_executor_enter_handler(TimestampTz deadline);
extern void je_executor_leave_handler(void);
extern void je_executor_enter_deadline(TimestampTz deadline);
extern bool je_executor_abort_requested(void);
extern void je_executor_count_claims(uint64 nclaimed);
extern bool je_executor_aborts_since_claim(void);
extern void je_executor_mark_recycled(void);
extern bool je_executor_yield_requested(void);

#endif
