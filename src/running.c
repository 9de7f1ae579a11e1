/*
 * running.c
 *	  How many jobs of each queue are running, per database, in shared
 *	  memory: what a claim for a queue with a concurrency limit compares
 *	  with the limit (claim.c).
 *
 * Counting the running rows of _jobs instead reads jobs_running_idx, and
 * with it every running version a held snapshot keeps from vacuum: each
 * claim of a limited queue paid for all the jobs claimed since that
 * snapshot, one claim at a time since claims of a limited queue take turns
 * (docs/architecture.md, "What it costs, and why").  Here the count costs
 * the same whatever the snapshots.
 *
 *	Moves.  The lifecycle guard (guard.c), a BEFORE ROW trigger enabled
 *	ALWAYS that sees every row written to _jobs, notes each move of a row
 *	into or out of 'running', or of a running row's queue, here: +1 or -1
 *	for the queue in backend memory, at the (sub)transaction's level; a rolled-back
 *	subtransaction's moves are dropped.  At COMMIT, the moves are added to
 *	the table.  A claim adds its own transaction's moves, not yet committed,
 *	to what the table says.  The claims of a queue take turns on a row lock
 *	held until they commit, and a move is added before the commit lets its
 *	locks go: the next claim sees the last one's jobs.  A job's end is added
 *	just after it is visible: until then a claim counts it still running.
 *
 *	Trust.  After the server starts, and whenever a move is seen that the
 *	table cannot follow (a running row loaded by COPY, or deleted; a
 *	TRUNCATE; a PREPARE of moves, whose COMMIT PREPARED runs no callback;
 *	more queues than entries; a count below zero; another jobs table after
 *	DROP and CREATE EXTENSION), the table is not trusted and claims count
 *	the rows as before.  The supervisor rebuilds it (je_running_rebuild):
 *	it marks the table rebuilding, counts the running rows in a snapshot S,
 *	and installs the counts; the moves committed meanwhile were logged with
 *	their transaction ids, and those S did not see are added on top.  A
 *	prepared transaction that wrote _jobs makes it try again later.
 *
 * Each database's table has a lock of its own (tranche job_engine_running).
 * Commit callbacks must not fail: they only take the lock and copy into
 * fixed memory.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "dispatch.h"
#include "internal_sql.h"
#include "running.h"
#include "settings.h"

/* Queues with running jobs one database's table holds. */
#define RUNNING_QUEUES 128
/* Moves logged while a rebuild counts. */
#define RUNNING_MOVES 1024

typedef enum RunningState
{
	RUNNING_UNTRUSTED = 0,
	RUNNING_REBUILDING,
	RUNNING_TRUSTED
} RunningState;

typedef struct RunningQueue
{
	char		name[NAMEDATALEN];
	int32		running;
} RunningQueue;

typedef struct RunningMove
{
	TransactionId xid;
	int32		delta;
	char		name[NAMEDATALEN];
} RunningMove;

typedef struct RunningTable
{
	LWLock	   *lock;
	Oid			dboid;			/* InvalidOid: free; set once, under the spinlock */
	RunningState state;
	Oid			jobs_relid;		/* the _jobs the counts are of */
	TimestampTz last_rebuild;
	int			rebuilder;		/* pid of the process rebuilding it */
	uint32		epoch;			/* bumped by a rebuild once its snapshot is taken */
	int32		committing[2];	/* transactions between PRE_COMMIT and COMMIT
								 * with moves, by the parity of their epoch */
	int			nqueues;
	RunningQueue queues[RUNNING_QUEUES];
	int			nmoves;
	RunningMove moves[RUNNING_MOVES];
} RunningTable;

typedef struct RunningShared
{
	slock_t		mutex;			/* taken to give a table to a database */
	int			ntables;
	RunningTable tables[FLEXIBLE_ARRAY_MEMBER];
} RunningShared;

/* A rebuild is tried at most this often (ms) while the table is not trusted. */
#define RUNNING_REBUILD_EVERY_MS 1000

static RunningShared *Running = NULL;
static RunningTable *my_table = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This transaction's moves, not yet committed. */
typedef struct PendingMove
{
	int			level;
	int32		delta;
	char		name[NAMEDATALEN];
} PendingMove;

static PendingMove *pending = NULL;		/* in TopTransactionContext */
static int	npending = 0;
static int	maxpending = 0;
static bool pending_untrust = false;	/* a move the table cannot follow */
static Oid	pending_relid = InvalidOid;	/* the _jobs the moves are of */
static TransactionId commit_xid = InvalidTransactionId;
static int	committing_epoch = -1;	/* registered at PRE_COMMIT: its parity */
static bool callbacks_registered = false;

static Size
running_shmem_size(void)
{
	return add_size(offsetof(RunningShared, tables),
					mul_size(Max(je_database_count(), 1), sizeof(RunningTable)));
}

static void
running_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(running_shmem_size());
	RequestNamedLWLockTranche("job_engine_running", Max(je_database_count(), 1));
}

static void
running_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Running = ShmemInitStruct("job_engine running counts", running_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("job_engine_running");

		SpinLockInit(&Running->mutex);
		Running->ntables = Max(je_database_count(), 1);
		for (int i = 0; i < Running->ntables; i++)
		{
			memset(&Running->tables[i], 0, sizeof(RunningTable));
			Running->tables[i].lock = &locks[i].lock;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
je_running_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = running_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = running_startup;
}

/*
 * This database's table; with `claim`, one is given to it if none is yet
 * (a table starts untrusted).  NULL when none is or can be.
 */
static RunningTable *
find_table(bool claim)
{
	RunningTable *t = NULL;

	if (Running == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	if (my_table != NULL && my_table->dboid == MyDatabaseId)
		return my_table;
	SpinLockAcquire(&Running->mutex);
	for (int i = 0; i < Running->ntables && t == NULL; i++)
		if (Running->tables[i].dboid == MyDatabaseId)
			t = &Running->tables[i];
	for (int i = 0; claim && i < Running->ntables && t == NULL; i++)
		if (!OidIsValid(Running->tables[i].dboid))
		{
			t = &Running->tables[i];
			t->dboid = MyDatabaseId;
		}
	SpinLockRelease(&Running->mutex);
	my_table = t;
	return t;
}

/*
 * The entry of queue `name`, added when `add`; NULL if none (or no room).
 * A queue without an entry counts 0, so when the table is full an entry
 * back at 0 is given to the new queue: queues that come and go do not make
 * the table give up (and be rebuilt) every 128 names.
 */
static RunningQueue *
queue_entry(RunningTable *t, const char *name, bool add)
{
	RunningQueue *q = NULL;
	RunningQueue *idle = NULL;

	for (int i = 0; i < t->nqueues; i++)
	{
		if (strcmp(t->queues[i].name, name) == 0)
			return &t->queues[i];
		if (idle == NULL && t->queues[i].running == 0)
			idle = &t->queues[i];
	}
	if (!add)
		return NULL;
	if (t->nqueues < RUNNING_QUEUES)
		q = &t->queues[t->nqueues++];
	else if (idle != NULL)
		q = idle;
	else
		return NULL;
	strlcpy(q->name, name, NAMEDATALEN);
	q->running = 0;
	return q;
}

/* Adds `delta` to `name`'s count; false when the table cannot hold it. */
static bool
add_move(RunningTable *t, const char *name, int32 delta)
{
	RunningQueue *q = queue_entry(t, name, true);

	if (q == NULL)
		return false;
	q->running += delta;
	return q->running >= 0;
}

/* At COMMIT: the transaction's moves go to the table (see the top). */
static void
apply_at_commit(void)
{
	RunningTable *t = find_table(false);

	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	/*
	 * Moves not registered at PRE_COMMIT (the database had no table yet)
	 * are not waited for by a rebuild, which may have counted them already.
	 */
	if (pending_untrust || (npending > 0 && committing_epoch < 0) ||
		(t->state == RUNNING_TRUSTED && t->jobs_relid != pending_relid))
		t->state = RUNNING_UNTRUSTED;
	for (int i = 0; i < npending && t->state != RUNNING_UNTRUSTED; i++)
	{
		if (t->state == RUNNING_TRUSTED)
		{
			if (!add_move(t, pending[i].name, pending[i].delta))
				t->state = RUNNING_UNTRUSTED;
		}
		else if (t->nmoves == RUNNING_MOVES || !TransactionIdIsValid(commit_xid))
			t->state = RUNNING_UNTRUSTED;
		else
		{
			RunningMove *m = &t->moves[t->nmoves++];

			m->xid = commit_xid;
			m->delta = pending[i].delta;
			strlcpy(m->name, pending[i].name, NAMEDATALEN);
		}
	}
	if (committing_epoch >= 0)
		t->committing[committing_epoch]--;
	LWLockRelease(t->lock);
}

/*
 * At PRE_COMMIT, when the transaction has moves: it is counted as
 * committing until its moves are applied, so that a rebuild waits for those
 * whose commit its snapshot may have seen (see je_running_rebuild).
 */
static void
register_committing(void)
{
	RunningTable *t = find_table(false);

	commit_xid = GetTopTransactionIdIfAny();
	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	committing_epoch = (int) (t->epoch & 1);
	t->committing[committing_epoch]++;
	LWLockRelease(t->lock);
}

/* A transaction registered at PRE_COMMIT rolled back after all. */
static void
unregister_committing(void)
{
	RunningTable *t = find_table(false);

	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	t->committing[committing_epoch]--;
	LWLockRelease(t->lock);
}

/*
 * Makes table `t` untrusted (NULL: none, nothing to do); with
 * `only_rebuilding`, only if a rebuild is under way, which gives it up.
 */
static void
set_untrusted(RunningTable *t, bool only_rebuilding)
{
	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	if (!only_rebuilding || t->state == RUNNING_REBUILDING)
		t->state = RUNNING_UNTRUSTED;
	LWLockRelease(t->lock);
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (npending > 0)
				register_committing();
			return;
		case XACT_EVENT_COMMIT:
			if (npending > 0 || pending_untrust || committing_epoch >= 0)
				apply_at_commit();
			break;
		case XACT_EVENT_PREPARE:
			if (npending > 0 || pending_untrust)
				set_untrusted(find_table(false), false);	/* COMMIT PREPARED runs no callback */
			break;
		case XACT_EVENT_ABORT:
			if (committing_epoch >= 0)
				unregister_committing();
			break;
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	/* TopTransactionContext goes away with the transaction. */
	pending = NULL;
	npending = maxpending = 0;
	pending_untrust = false;
	pending_relid = InvalidOid;
	commit_xid = InvalidTransactionId;
	committing_epoch = -1;
}

/* A subtransaction's moves become its parent's, or are dropped. */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (npending > 0 && pending[npending - 1].level >= level)
			npending--;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (int i = 0; i < npending; i++)
			if (pending[i].level >= level)
				pending[i].level = level - 1;
	}
}

/*
 * Notes a move of `delta` (+1 into 'running', -1 out of it) of a job of
 * queue `name` in the jobs table `relid`, made by the current
 * (sub)transaction: called by the lifecycle guard (guard.c) for every row
 * it lets be written.  NULL `name`: a move the table cannot follow, which
 * makes it untrusted at commit.
 */
void
je_running_note_move(Oid relid, const char *name, int32 delta)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		RegisterSubXactCallback(subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (OidIsValid(pending_relid) && pending_relid != relid)
		pending_untrust = true;
	pending_relid = relid;
	if (name == NULL)
	{
		pending_untrust = true;
		return;
	}
	if (strlen(name) >= NAMEDATALEN)
		return;					/* never held: see je_running_count() */
	if (npending == maxpending)
	{
		maxpending = Max(8, maxpending * 2);
		pending = pending == NULL
			? MemoryContextAlloc(TopTransactionContext, sizeof(PendingMove) * maxpending)
			: repalloc(pending, sizeof(PendingMove) * maxpending);
	}
	pending[npending].level = GetCurrentTransactionNestLevel();
	pending[npending].delta = delta;
	strlcpy(pending[npending].name, name, NAMEDATALEN);
	npending++;
}

/*
 * Notes that the current transaction changed the running rows of
 * `jobs_relid` in a way the table cannot follow (a running row loaded or
 * deleted): the table is untrusted from its commit on.
 */
void
je_running_untrust(Oid jobs_relid)
{
	je_running_note_move(jobs_relid, NULL, 0);
}

PG_FUNCTION_INFO_V1(job_engine_running_truncated);

/*
 * job_engine_internal._running_truncated(): AFTER TRUNCATE of _jobs, which
 * fires no row trigger: the table is untrusted from the commit on.
 */
Datum
job_engine_running_truncated(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("job_engine_internal._running_truncated() must be an AFTER TRUNCATE trigger")));
	je_running_untrust(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/*
 * The running jobs of `queue` into *running, this transaction's moves
 * included, when the table is trusted and of the current jobs table
 * (`jobs_relid`); false otherwise: the caller counts the rows.
 */
bool
je_running_count(Oid jobs_relid, const char *queue, int32 *running)
{
	RunningTable *t = find_table(false);
	RunningQueue *q;
	bool		trusted;

	/*
	 * A queue whose name is too long to hold is never counted here, so that
	 * one role's long queue name does not make the whole table untrusted:
	 * its claims count its rows.
	 */
	if (t == NULL || pending_untrust || strlen(queue) >= NAMEDATALEN ||
		(OidIsValid(pending_relid) && pending_relid != jobs_relid))
		return false;
	LWLockAcquire(t->lock, LW_SHARED);
	trusted = t->state == RUNNING_TRUSTED && t->jobs_relid == jobs_relid;
	q = trusted ? queue_entry(t, queue, false) : NULL;
	*running = q != NULL ? q->running : 0;
	LWLockRelease(t->lock);
	if (!trusted)
		return false;
	for (int i = 0; i < npending; i++)
		if (strcmp(pending[i].name, queue) == 0)
			*running += pending[i].delta;
	return true;
}

/*
 * Whether a prepared transaction holds a lock on job_engine._jobs that a
 * write takes: its moves would reach the table with no callback.
 */
static const char *prepared_sql =
"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
"                WHERE l.pid IS NULL AND l.locktype OPERATOR(pg_catalog.=) 'relation'"
"                  AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d"
"                       WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
"                  AND l.relation OPERATOR(pg_catalog.=) 'job_engine._jobs'::pg_catalog.regclass"
"                  AND l.mode OPERATOR(pg_catalog.<>) 'AccessShareLock')";

static const char *count_sql =
"SELECT r.queue, pg_catalog.count(*)::integer FROM job_engine._jobs r"
" WHERE r.state OPERATOR(pg_catalog.=) 'running'"
"   AND pg_catalog.octet_length(r.queue) OPERATOR(pg_catalog.<) " CppAsString2(NAMEDATALEN)
" GROUP BY r.queue";

static bool
prepared_writer_exists(void)
{
	bool		isnull;

	if (SPI_execute(prepared_sql, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "job_engine: looking for prepared transactions failed");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Whether table `t` needs a rebuild: it is not trusted, or it is marked
 * rebuilding by a rebuild that will never finish, cut short by an error
 * (this process's: rebuilds run in one go, so not one under way) or by the
 * end of its process (a supervisor cancelled or terminated).  Lock held.
 */
static bool
needs_rebuild(RunningTable *t)
{
	return t->state == RUNNING_UNTRUSTED ||
		(t->state == RUNNING_REBUILDING &&
		 (t->rebuilder == MyProcPid || BackendPidGetProc(t->rebuilder) == NULL));
}

/*
 * Whether this database's table needs a rebuild and one may be tried now
 * (at most once a second); gives the database a table if it has none.
 */
bool
je_running_rebuild_due(void)
{
	RunningTable *t = find_table(true);
	bool		due;

	if (t == NULL)
		return false;
	LWLockAcquire(t->lock, LW_SHARED);
	due = needs_rebuild(t) &&
		TimestampDifferenceExceeds(t->last_rebuild, GetCurrentTimestamp(),
								   RUNNING_REBUILD_EVERY_MS);
	LWLockRelease(t->lock);
	return due;
}

/*
 * Waits until the transactions that were committing moves when the
 * rebuild's snapshot was taken have applied them: each may have been seen
 * committed by the snapshot or not, and its moves are logged with its
 * transaction id for the rebuild to tell.  One that applied them after the
 * rebuild installed its counts would add them a second time.  Those that
 * come to commit later were not seen, and their moves count on top either
 * way.  The wait lasts as long as a commit record's flush; false after a
 * second.
 */
static bool
wait_for_committing(RunningTable *t)
{
	int			parity;

	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	parity = (int) (t->epoch & 1);
	t->epoch++;
	LWLockRelease(t->lock);
	for (int i = 0; i < 1000; i++)
	{
		int32		left;

		LWLockAcquire(t->lock, LW_SHARED);
		left = t->committing[parity];
		LWLockRelease(t->lock);
		if (left == 0)
			return true;
		pg_usleep(1000L);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/*
 * Rebuilds this database's table if it is not trusted (see the top), at
 * most once a second, in the current transaction and SPI connection (the
 * supervisor's).  The count is read in a snapshot of its own, taken after
 * the table is marked rebuilding.
 */
void
je_running_rebuild(void)
{
	RunningTable *t = find_table(true);
	TimestampTz now = GetCurrentTimestamp();
	Oid			relid;
	Snapshot	snapshot;
	SPITupleTable *counted;
	int			n;

	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	if (!needs_rebuild(t) ||
		!TimestampDifferenceExceeds(t->last_rebuild, now, RUNNING_REBUILD_EVERY_MS))
	{
		LWLockRelease(t->lock);
		return;
	}
	t->last_rebuild = now;
	t->state = RUNNING_REBUILDING;
	t->rebuilder = MyProcPid;
	t->nmoves = 0;
	LWLockRelease(t->lock);

	relid = RangeVarGetRelid(makeRangeVar("job_engine", "_jobs", -1), NoLock, true);
	if (!OidIsValid(relid) || !je_dispatch_rows_noted() || prepared_writer_exists())
	{
		set_untrusted(t, true);
		return;
	}
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	if (!wait_for_committing(t))
	{
		UnregisterSnapshot(snapshot);
		set_untrusted(t, true);
		return;
	}
	PushActiveSnapshot(snapshot);
	if (SPI_execute(count_sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: counting running jobs failed");
	PopActiveSnapshot();
	n = (int) SPI_processed;
	counted = SPI_tuptable;		/* kept until SPI_finish */
	if (n > RUNNING_QUEUES || prepared_writer_exists())
	{
		UnregisterSnapshot(snapshot);
		set_untrusted(t, true);
		return;
	}

	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	if (t->state == RUNNING_REBUILDING)
	{
		bool		ok = true;

		t->nqueues = 0;
		for (int i = 0; i < n && ok; i++)
		{
			HeapTuple	tup = counted->vals[i];
			bool		isnull;
			char	   *name = TextDatumGetCString(SPI_getbinval(tup, counted->tupdesc, 1, &isnull));

			ok = add_move(t, name, DatumGetInt32(SPI_getbinval(tup, counted->tupdesc, 2, &isnull)));
		}
		/* The moves committed meanwhile that the count did not see. */
		for (int i = 0; i < t->nmoves && ok; i++)
			if (XidInMVCCSnapshot(t->moves[i].xid, snapshot))
				ok = add_move(t, t->moves[i].name, t->moves[i].delta);
		t->nmoves = 0;
		t->jobs_relid = relid;
		t->state = ok ? RUNNING_TRUSTED : RUNNING_UNTRUSTED;
	}
	LWLockRelease(t->lock);
	UnregisterSnapshot(snapshot);
}

PG_FUNCTION_INFO_V1(job_engine_running_counts);

/*
 * job_engine_internal._running_counts(): this database's table, for tests
 * and troubleshooting: one row per queue held, and whether it is trusted
 * (when it is not, claims count the rows of _jobs).
 */
Datum
job_engine_running_counts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RunningTable *t;

	InitMaterializedSRF(fcinfo, 0);
	t = find_table(false);
	if (t == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(t->lock, LW_SHARED);
	for (int i = 0; i < t->nqueues; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false};

		values[0] = CStringGetTextDatum(t->queues[i].name);
		values[1] = Int32GetDatum(t->queues[i].running);
		values[2] = BoolGetDatum(t->state == RUNNING_TRUSTED);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (t->nqueues == 0)
	{
		Datum		values[3] = {(Datum) 0, Int32GetDatum(0), BoolGetDatum(t->state == RUNNING_TRUSTED)};
		bool		nulls[3] = {true, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(t->lock);
	PG_RETURN_VOID();
}
