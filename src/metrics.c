/*
 * metrics.c
 *	  Monotonic counters of job transitions (jobs created, jobs finished by
 *	  state, attempts by outcome, the sum and count of finished jobs'
 *	  durations), per database and owner, in shared memory.
 *
 * The lifecycle guard (guard.c), which sees every transition of every job,
 * counts each one here; _create_job() counts the jobs it creates.  A count is pending in the backend until its
 * transaction commits, and is then added to the shared counters with one
 * atomic addition per counter: nothing is counted for a transition that
 * rolls back (with its subtransaction or its transaction), and the hot
 * path takes no lock and writes no row for it.  Like the server's own
 * pg_stat counters they start from zero at server start; retention and
 * purge never lower them.  Why shared memory and not a table:
 * docs/monitoring.md, "Counters".
 *
 * The shared table has JE_COUNTER_SLOTS entries, one per (database, owner)
 * pair met since the server started; entries are never freed.  Should it
 * fill up, the transitions of further pairs are not counted, and
 * job_engine_internal._counters() says how many were lost.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "metrics.h"

#define JE_COUNTER_SLOTS 1024

typedef struct CounterSlot
{
	Oid			dboid;			/* written once, before the slot is published */
	Oid			owner;
	pg_atomic_uint64 counts[JC_NCOUNTERS];
} CounterSlot;

typedef struct CounterTable
{
	slock_t		mutex;			/* taken to add a slot */
	pg_atomic_uint32 nused;		/* slots [0, nused) are published */
	pg_atomic_uint64 lost;		/* transitions not counted: no free slot */
	CounterSlot slots[JE_COUNTER_SLOTS];
} CounterTable;

static CounterTable *Counters = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Counts of this backend's transaction not yet committed, per (sub)level. */
typedef struct PendingCounts
{
	int			level;			/* transaction nesting level */
	Oid			owner;
	int64		counts[JC_NCOUNTERS];
} PendingCounts;

/* In TopTransactionContext; levels never decrease along the array. */
static PendingCounts *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static bool callbacks_registered = false;
static bool failures_are_crashes = false;

/* The last slot flushed to: an executor serves one owner at a time. */
static CounterSlot *last_slot = NULL;

static void
counters_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(CounterTable));
}

static void
counters_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Counters = ShmemInitStruct("job_engine counters", sizeof(CounterTable), &found);
	if (!found)
	{
		SpinLockInit(&Counters->mutex);
		pg_atomic_init_u32(&Counters->nused, 0);
		pg_atomic_init_u64(&Counters->lost, 0);
		for (int i = 0; i < JE_COUNTER_SLOTS; i++)
		{
			Counters->slots[i].dboid = InvalidOid;
			Counters->slots[i].owner = InvalidOid;
			for (int c = 0; c < JC_NCOUNTERS; c++)
				pg_atomic_init_u64(&Counters->slots[i].counts[c], 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
je_metrics_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = counters_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = counters_startup;
}

static CounterSlot *
find_slot(uint32 from, uint32 to, Oid dboid, Oid owner)
{
	for (uint32 i = from; i < to; i++)
	{
		CounterSlot *slot = &Counters->slots[i];

		if (slot->dboid == dboid && slot->owner == owner)
			return slot;
	}
	return NULL;
}

/* The slot of (dboid, owner), added if new; NULL when the table is full. */
static CounterSlot *
slot_of(Oid dboid, Oid owner)
{
	uint32		n;
	CounterSlot *slot;

	if (last_slot != NULL && last_slot->dboid == dboid && last_slot->owner == owner)
		return last_slot;
	n = pg_atomic_read_u32(&Counters->nused);
	pg_read_barrier();
	slot = find_slot(0, n, dboid, owner);
	if (slot == NULL)
	{
		uint32		now;

		SpinLockAcquire(&Counters->mutex);
		now = pg_atomic_read_u32(&Counters->nused);
		slot = find_slot(n, now, dboid, owner);
		if (slot == NULL && now < JE_COUNTER_SLOTS)
		{
			slot = &Counters->slots[now];
			slot->dboid = dboid;
			slot->owner = owner;
			pg_write_barrier();
			pg_atomic_write_u32(&Counters->nused, now + 1);
		}
		SpinLockRelease(&Counters->mutex);
	}
	if (slot != NULL)
		last_slot = slot;
	return slot;
}

/* At commit: the transaction's counts go to the shared counters. */
static void
flush_pending(void)
{
	for (int i = 0; i < npending; i++)
	{
		CounterSlot *slot = slot_of(MyDatabaseId, pending[i].owner);

		for (int c = 0; c < JC_NCOUNTERS; c++)
		{
			if (pending[i].counts[c] == 0)
				continue;
			if (slot != NULL)
				pg_atomic_fetch_add_u64(&slot->counts[c], (uint64) pending[i].counts[c]);
			else if (c < JC_DURATION_US)
				pg_atomic_fetch_add_u64(&Counters->lost, (uint64) pending[i].counts[c]);
		}
	}
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			flush_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:	/* not counted: see docs/monitoring.md */
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	/* TopTransactionContext goes away with the transaction. */
	pending = NULL;
	npending = maxpending = 0;
	failures_are_crashes = false;
}

/*
 * A subtransaction ends: its counts become its parent's (commit) or are
 * dropped (abort).  They are the last entries of the array.
 */
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
		int			first = npending;

		while (first > 0 && pending[first - 1].level >= level)
			first--;
		for (int i = first; i < npending;)
		{
			int			into = -1;

			for (int j = first - 1; j >= 0 && pending[j].level == level - 1; j--)
				if (pending[j].owner == pending[i].owner)
					into = j;
			if (into < 0)
			{
				pending[i++].level = level - 1;
				continue;
			}
			for (int c = 0; c < JC_NCOUNTERS; c++)
				pending[into].counts[c] += pending[i].counts[c];
			memmove(&pending[i], &pending[i + 1], sizeof(PendingCounts) * (npending - i - 1));
			npending--;
		}
	}
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	callbacks_registered = true;
}

/*
 * Counts `delta` for `counter` of jobs of `owner` in this database, once
 * the current (sub)transaction commits.
 */
void
je_metrics_count(Oid owner, JeCounter counter, int64 delta)
{
	int			level;
	int			i;

	if (Counters == NULL || !IsTransactionState())
		return;
	register_callbacks();
	level = GetCurrentTransactionNestLevel();
	for (i = npending - 1; i >= 0 && pending[i].level == level; i--)
		if (pending[i].owner == owner)
			break;
	if (i < 0 || pending[i].level != level)
	{
		if (npending == maxpending)
		{
			maxpending = Max(4, maxpending * 2);
			pending = pending == NULL
				? MemoryContextAlloc(TopTransactionContext, sizeof(PendingCounts) * maxpending)
				: repalloc(pending, sizeof(PendingCounts) * maxpending);
		}
		i = npending++;
		memset(&pending[i], 0, sizeof(PendingCounts));
		pending[i].level = level;
		pending[i].owner = owner;
	}
	pending[i].counts[counter] += delta;
}

/* A finished job: its state's counter, and its duration if it ran. */
void
je_metrics_count_finished(Oid owner, JeCounter counter,
						  TimestampTz started_at, TimestampTz finished_at)
{
	je_metrics_count(owner, counter, 1);
	if (started_at != 0 && finished_at >= started_at)
	{
		je_metrics_count(owner, JC_DURATION_US, finished_at - started_at);
		je_metrics_count(owner, JC_DURATION_COUNT, 1);
	}
}

/*
 * Says that the attempts recorded failed in the current transaction
 * crashed: crash recovery's, whose SQL records them through the same
 * _record_failure() as a handler's error.  Until the transaction ends.
 */
void
je_metrics_failures_are_crashes(void)
{
	register_callbacks();
	failures_are_crashes = true;
}

bool
je_metrics_crash_recording(void)
{
	return failures_are_crashes;
}

PG_FUNCTION_INFO_V1(job_engine_count_created);

/* job_engine_internal._count_created(owner, n): jobs created, counted at commit. */
Datum
job_engine_count_created(PG_FUNCTION_ARGS)
{
	if (PG_GETARG_INT32(1) > 0)
		je_metrics_count(PG_GETARG_OID(0), JC_JOBS_CREATED, PG_GETARG_INT32(1));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(job_engine_counters);

/*
 * job_engine_internal._counters(): one row per owner with counts in this database,
 * and one with owner NULL saying how many transitions went uncounted
 * because the shared table was full (in jobs_created; it is cluster-wide).
 */
Datum
job_engine_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint32		n;
	Datum		values[JC_NCOUNTERS + 1];
	bool		nulls[JC_NCOUNTERS + 1];

	InitMaterializedSRF(fcinfo, 0);
	if (Counters == NULL)
		PG_RETURN_VOID();

	n = pg_atomic_read_u32(&Counters->nused);
	pg_read_barrier();
	for (uint32 i = 0; i < n; i++)
	{
		CounterSlot *slot = &Counters->slots[i];

		if (slot->dboid != MyDatabaseId)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = ObjectIdGetDatum(slot->owner);
		for (int c = 0; c < JC_NCOUNTERS; c++)
			values[c + 1] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->counts[c]));
		/* The sum of durations in seconds. */
		values[JC_DURATION_US + 1] =
			Float8GetDatum((double) pg_atomic_read_u64(&slot->counts[JC_DURATION_US]) / 1000000.0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	memset(nulls, true, sizeof(nulls));
	nulls[1] = false;
	values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&Counters->lost));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	PG_RETURN_VOID();
}
