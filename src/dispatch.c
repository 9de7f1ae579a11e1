/*
 * dispatch.c
 *	  Claim low-water marks: per database, in shared memory, for each queue
 *	  with candidates, a key of jobs_claim_idx (priority, run_at, id) below
 *	  which the queue has no committed candidate (docs/architecture.md,
 *	  "Claim low-water marks").  A claim descends into a queue's range from
 *	  its mark instead of from the range's start, so it does not walk the
 *	  index entries of the jobs claimed since the oldest snapshot (which
 *	  cannot be marked dead while that snapshot lives): what a claim costs
 *	  no longer depends on how many there are.
 *
 * Marks are only ever conservative: a mark may lie below the first
 * candidate, never above one.
 *
 *	Lowering.  The lifecycle guard (guard.c), which sees every row written
 *	to _jobs, notes each row written as a candidate (inserted, or updated
 *	to created/retrying with blocked NULL) here (je_dispatch_note_candidate),
 *	which keeps the lowest key per queue for the transaction in backend
 *	memory.  At COMMIT, when the rows have become
 *	visible, each queue's mark is lowered to its key and the lowering is
 *	recorded, with a sequence number, in a ring of recent lowerings.  ABORT
 *	drops them; PREPARE makes the table invalid, as the prepared rows
 *	become visible at a COMMIT PREPARED that runs no callback of ours.
 *
 *	Advancing.  Only claims advance marks.  A claim reads the marks and the
 *	ring's sequence number s0 before its statement takes its snapshot, then
 *	finds per queue the first candidate at or after the mark, due or not
 *	(f).  No committed candidate of the queue lies below f, except rows
 *	committed after the snapshot: their lowerings have a sequence number
 *	above s0, and are in the ring unless it wrapped.  So, under the lock,
 *	the new mark is the lowest of f and the ring's keys for the queue after
 *	s0, and the mark becomes the higher of itself and that (both are
 *	valid).  Nothing advances if the ring wrapped or the table was made
 *	invalid since s0.  A queue without candidates leaves a complete table:
 *	in a complete table, a queue that is not there has none.
 *
 *	Invalid table.  After the server or the supervisor starts, and at
 *	PREPARE (or a change of _jobs' triggers), nothing is known: claims walk
 *	every queue from its start as before, and one of them, at most once a
 *	second, rebuilds the table by one walk of every queue's first
 *	candidate, checked against the ring as above, unless a prepared
 *	transaction holds a lock on job_engine._jobs (its rows would be found
 *	only by a later rebuild).
 *
 *	Overflow.  When a lowering finds no free entry, or a queue name the
 *	table cannot hold, the table overflows: its marks stay valid, but a
 *	queue it does not list may have candidates.  A lowering then lowers
 *	listed queues only (an unlisted queue's earlier candidates are
 *	unknown), a listed queue found empty keeps its entry, and claims take
 *	the listed queues from their marks and the others by a walk of the gaps
 *	between the listed names (JE_GAP_WALK, dispatch.h), which never enters
 *	a listed queue's range.  The rebuild, at most once a second, walks the
 *	same way and keeps the best 128 queues (rebuild_row_cmp); the table is
 *	complete again when they are all.  So a role's many or long-named
 *	queues cost the others a descent per gap, not the marks.
 *
 * Each database's table has a lock of its own (tranche job_engine_dispatch),
 * never JobEngineShmem->lock.  Commit callbacks must not fail: the lowering
 * at COMMIT only takes the lock and copies into fixed memory.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "dispatch.h"
#include "internal_sql.h"
#include "settings.h"

/* Queues with candidates one database's table holds. */
#define DISPATCH_QUEUES 128
/* Recent lowerings kept for claims and rebuilds in flight. */
#define DISPATCH_RING 1024
/*
 * Longest queue name held, plus its terminator: any valid one, of at most
 * 200 characters (_require_name(), src/sql/40_validation.sql) of at most
 * MAX_MULTIBYTE_CHAR_LEN bytes each.  A longer one (rows loaded by COPY)
 * makes the table overflow.
 */
#define DISPATCH_NAME (200 * MAX_MULTIBYTE_CHAR_LEN + 1)
/*
 * Bytes of a queue name a lowering in the ring keeps (with its
 * terminator): a longer name is known there by its length, its start and
 * its hash (ring_names), which keeps the ring small.
 */
#define DISPATCH_RING_NAME NAMEDATALEN
/*
 * Lowerings of such longer names whose whole name is kept too, for a
 * rebuild (apply_rebuild): lowering n's in long_names[n % size], unless a
 * later one took its place.
 */
#define DISPATCH_LONG_NAMES 64
/* Most queues a rebuild's walk of the queues not listed returns. */
#define DISPATCH_WALK_MAX 1024
/* A rebuild is tried at most this often (ms) while the table is not complete. */
#define DISPATCH_REBUILD_EVERY_MS 1000

typedef struct DispatchQueue
{
	bool		used;
	bool		advanced;		/* a claim moved its mark up since it was
								 * listed: the start of its range may hold
								 * entries of jobs claimed (rebuild_row_cmp) */
	char		name[DISPATCH_NAME];
	JeDispatchKey mark;
} DispatchQueue;

typedef struct DispatchLongName
{
	uint64		seq;			/* of the lowering */
	char		name[DISPATCH_NAME];
} DispatchLongName;

typedef struct DispatchLowering
{
	uint64		seq;
	int			len;			/* of the queue's name */
	uint32		hash;			/* of the name, when len >= DISPATCH_RING_NAME */
	char		name[DISPATCH_RING_NAME];	/* the name, or its start */
	JeDispatchKey key;
} DispatchLowering;

/*
 * What a table says of the queues it does not list.  Invalid: nothing, and
 * its marks are not used.  Overflow: its marks are valid, but a queue it
 * does not list may have candidates (it was full, or a name was too long):
 * such a queue is listed again only by a rebuild, which knows its first
 * candidate.  Complete: a queue it does not list has none.
 */
typedef enum DispatchState
{
	DISPATCH_INVALID,
	DISPATCH_OVERFLOW,
	DISPATCH_COMPLETE
} DispatchState;

typedef struct DispatchTable
{
	LWLock	   *lock;
	Oid			dboid;			/* set by the database's supervisor */
	DispatchState state;
	uint64		seq;			/* last number given to a lowering or a reset */
	uint64		reset_seq;		/* number of the last reset (made invalid) */
	uint64		unlisted_seq;	/* number of the last lowering not recorded in
								 * the ring (a name too long) */
	TimestampTz last_rebuild;	/* last rebuild tried */
	/*
	 * Jobs not yet due, kept out of the claim (deferred.c): none of those
	 * committed is due before next_deferred, except those written by
	 * commits after deferred_gen was last read.  Every commit that defers
	 * a job lowers it to the job's run_at and adds one to deferred_gen; a
	 * release sets it from what its snapshot found.  A release looks only
	 * at jobs due after released_to (those due before were released, or
	 * their rows were locked then); a sweep, once every poll_interval
	 * (last_sweep), at all.  Written under the lock (last_sweep by a
	 * compare-and-exchange), read without it: every claim reads them.
	 */
	pg_atomic_uint64 next_deferred;	/* a TimestampTz */
	pg_atomic_uint64 deferred_gen;
	pg_atomic_uint64 released_to;	/* a TimestampTz */
	pg_atomic_uint64 last_sweep;	/* a TimestampTz */
	DispatchQueue queues[DISPATCH_QUEUES];
	DispatchLowering ring[DISPATCH_RING];	/* lowering n in ring[n % size] */
	DispatchLongName long_names[DISPATCH_LONG_NAMES];
} DispatchTable;

static DispatchTable *tables = NULL;
static int	ntables = 0;

/* This backend's database's table, once found. */
static DispatchTable *my_table = NULL;

/* The lowest key per queue made a candidate by this transaction. */
typedef struct PendingLowering
{
	char		name[DISPATCH_NAME];
	JeDispatchKey key;
} PendingLowering;

static PendingLowering *pending = NULL;
static int	npending = 0;
static int	maxpending = 0;
static int	last_pending = 0;	/* where the last row's queue was found */
static bool pending_reset = false;	/* rows the guard may not have noted */
static bool pending_unlisted = false;	/* a queue name the table cannot hold */

/*
 * What this transaction's claims found, applied when it commits: until
 * then, what their snapshots showed includes this transaction's own
 * changes, which a rollback would undo (a held job, a job a handler
 * aborted, a claim rolled back when the job is another owner's).  Each
 * belongs to the subtransaction that noted it, like wakeup.c's interrupts.
 */
typedef struct PendingAdvance
{
	uint64		s0;				/* ring's number when the marks were read */
	int			nest_level;
	bool		empty;			/* the queue had no candidate */
	char		name[DISPATCH_NAME];
	JeDispatchKey first;		/* else its first one */
} PendingAdvance;

static PendingAdvance *advances = NULL;
static int	nadvances = 0;
static int	maxadvances = 0;

/* A rebuild's walk, installed at commit. */
typedef struct PendingRebuild
{
	bool		valid;
	uint64		s0;
	int			nest_level;
	bool		overflow;		/* queues with candidates were left out */
	int			n;
	char		names[DISPATCH_QUEUES][DISPATCH_NAME];
	JeDispatchKey keys[DISPATCH_QUEUES];
	bool		empty[DISPATCH_QUEUES];	/* a listed queue found without any */
	bool		advanced[DISPATCH_QUEUES];
} PendingRebuild;

static PendingRebuild *rebuild = NULL;

/* The earliest run_at this transaction deferred (DT_NOEND: none). */
static TimestampTz pending_deferred = DT_NOEND;

/* What a release found: the next deferred job's run_at, applied at commit. */
static struct
{
	bool		valid;
	int			nest_level;
	uint64		gen;			/* deferred_gen read before its snapshot */
	TimestampTz next;
	TimestampTz upto;			/* every job due by then was looked at */
} deferred_found;

/* Orders keys as jobs_claim_idx orders them within a queue. */
int
je_dispatch_key_cmp(const JeDispatchKey *a, const JeDispatchKey *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	if (a->run_at != b->run_at)
		return a->run_at < b->run_at ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

Size
je_dispatch_shmem_size(int ndatabases)
{
	return mul_size(ndatabases, sizeof(DispatchTable));
}

void
je_dispatch_request_locks(int ndatabases)
{
	RequestNamedLWLockTranche("job_engine_dispatch", Max(ndatabases, 1));
}

/*
 * Called under AddinShmemInitLock by shmem.c, with `init` when the memory
 * is new; every table starts invalid.
 */
void
je_dispatch_shmem_init(void *base, int ndatabases, bool init)
{
	LWLockPadded *locks = GetNamedLWLockTranche("job_engine_dispatch");

	tables = (DispatchTable *) base;
	ntables = ndatabases;
	for (int i = 0; init && i < ndatabases; i++)
	{
		memset(&tables[i], 0, sizeof(DispatchTable));
		tables[i].lock = &locks[i].lock;
		pg_atomic_init_u64(&tables[i].next_deferred, (uint64) DT_NOBEGIN);
		pg_atomic_init_u64(&tables[i].deferred_gen, 0);
		pg_atomic_init_u64(&tables[i].released_to, (uint64) DT_NOBEGIN);
		pg_atomic_init_u64(&tables[i].last_sweep, 0);
	}
}

/* A key above every key: the mark of a listed queue without candidates. */
static const JeDispatchKey key_max = {PG_INT32_MAX, DT_NOEND, PG_INT64_MAX};

/* Makes table t invalid.  The caller holds its lock exclusively. */
static void
reset_locked(DispatchTable *t)
{
	t->state = DISPATCH_INVALID;
	t->reset_seq = ++t->seq;
}

/*
 * A queue with candidates is left out of table t: a complete table
 * overflows, its marks still valid.  Lock held exclusively.
 */
static void
overflow_locked(DispatchTable *t)
{
	if (t->state == DISPATCH_COMPLETE)
		t->state = DISPATCH_OVERFLOW;
}

/*
 * The database's supervisor starts: the table is its database's, and
 * invalid until a claim rebuilds it (jobs may have become candidates
 * while nobody kept it).
 */
void
je_dispatch_attach(int dbindex)
{
	DispatchTable *t = &tables[dbindex];

	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	t->dboid = MyDatabaseId;
	reset_locked(t);
	/* Unknown: the first claim releases, from the first deferred job. */
	pg_atomic_write_u64(&t->next_deferred, (uint64) DT_NOBEGIN);
	pg_atomic_write_u64(&t->released_to, (uint64) DT_NOBEGIN);
	pg_atomic_fetch_add_u64(&t->deferred_gen, 1);
	for (int i = 0; i < DISPATCH_QUEUES; i++)
		t->queues[i].used = false;
	t->last_rebuild = 0;
	LWLockRelease(t->lock);
}

/* The table of this backend's database, or NULL (no supervisor serves it yet). */
static DispatchTable *
find_table(void)
{
	if (my_table != NULL && my_table->dboid == MyDatabaseId)
		return my_table;
	my_table = NULL;
	pg_memory_barrier();
	for (int i = 0; i < ntables; i++)
	{
		if (tables[i].dboid == MyDatabaseId && OidIsValid(MyDatabaseId))
			my_table = &tables[i];
	}
	return my_table;
}

static DispatchQueue *
find_queue(DispatchTable *t, const char *name)
{
	for (int i = 0; i < DISPATCH_QUEUES; i++)
	{
		if (t->queues[i].used && strcmp(t->queues[i].name, name) == 0)
			return &t->queues[i];
	}
	return NULL;
}

static DispatchQueue *
add_queue(DispatchTable *t, const char *name, const JeDispatchKey *mark)
{
	if (strlen(name) >= DISPATCH_NAME)
		return NULL;
	for (int i = 0; i < DISPATCH_QUEUES; i++)
	{
		DispatchQueue *q = &t->queues[i];

		if (!q->used)
		{
			q->used = true;
			q->advanced = false;
			strlcpy(q->name, name, DISPATCH_NAME);
			q->mark = *mark;
			return q;
		}
	}
	return NULL;
}

/*
 * Copies table t's listed queues and marks into `marks`, and into
 * advanced[] (unless NULL) whether each was advanced.  Lock held.
 */
static void
read_marks_locked(DispatchTable *t, JeDispatchMarks *marks, bool *advanced)
{
	for (int i = 0; i < DISPATCH_QUEUES; i++)
	{
		if (t->queues[i].used)
		{
			if (advanced != NULL)
				advanced[marks->n] = t->queues[i].advanced;
			marks->names[marks->n] = pstrdup(t->queues[i].name);
			marks->keys[marks->n] = t->queues[i].mark;
			marks->n++;
		}
	}
}

static uint32
name_hash(const char *name, int len)
{
	return hash_bytes((const unsigned char *) name, len);
}

/*
 * Whether lowering r is of queue `name` (`len` bytes; `hash` its
 * name_hash() when len >= DISPATCH_RING_NAME).  For a name the ring keeps
 * only the start of, another name of the same length, start and hash
 * would match too: that only lowers a mark more than needed, which is
 * safe.  Whether the queue of such a lowering is listed is asked with its
 * whole name, from long_names (apply_rebuild).
 */
static bool
ring_names(const DispatchLowering *r, const char *name, int len, uint32 hash)
{
	if (r->len != len)
		return false;
	if (len < DISPATCH_RING_NAME)
		return strcmp(r->name, name) == 0;
	return r->hash == hash && strncmp(r->name, name, DISPATCH_RING_NAME - 1) == 0;
}

static bool lowest_since(DispatchTable *t, uint64 s0, const char *name,
						 const JeDispatchKey *first, JeDispatchKey *lowest);
static bool ring_holds(DispatchTable *t, uint64 s0);

/* Lowers the marks for this transaction's new candidates.  Lock held. */
static void
apply_lowerings(DispatchTable *t)
{
	for (int i = 0; i < npending; i++)
	{
		PendingLowering *p = &pending[i];
		DispatchLowering *r;
		DispatchQueue *q;

		r = &t->ring[++t->seq % DISPATCH_RING];
		r->seq = t->seq;
		r->len = strlen(p->name);
		r->hash = r->len >= DISPATCH_RING_NAME ? name_hash(p->name, r->len) : 0;
		strlcpy(r->name, p->name, DISPATCH_RING_NAME);
		r->key = p->key;
		if (r->len >= DISPATCH_RING_NAME)
		{
			DispatchLongName *l = &t->long_names[t->seq % DISPATCH_LONG_NAMES];

			l->seq = t->seq;
			strlcpy(l->name, p->name, DISPATCH_NAME);
		}
		q = find_queue(t, p->name);
		if (q != NULL)
		{
			if (je_dispatch_key_cmp(&p->key, &q->mark) < 0)
				q->mark = p->key;
		}
		else if (t->state == DISPATCH_OVERFLOW)
			continue;			/* its earlier candidates are unknown */
		else if (add_queue(t, p->name, &p->key) == NULL)
			overflow_locked(t);
	}
	if (pending_unlisted)
	{
		/* Not in the ring: a rebuild in flight must not call t complete. */
		t->unlisted_seq = ++t->seq;
		overflow_locked(t);
	}
}

/*
 * Fills a table that is not complete from a rebuild's walk taken after s0,
 * unless the ring wrapped or the table was reset since.  The walk's queues
 * without candidates (from a listed queue's mark) are listed with key_max
 * while the table overflows: they stay listed, so their next candidates
 * are found from a mark.  Lock held.
 */
static void
apply_rebuild(DispatchTable *t)
{
	if (t->state == DISPATCH_COMPLETE || !ring_holds(t, rebuild->s0))
		return;
	for (int i = 0; i < DISPATCH_QUEUES; i++)
		t->queues[i].used = false;
	t->state = rebuild->overflow || t->unlisted_seq > rebuild->s0
		? DISPATCH_OVERFLOW : DISPATCH_COMPLETE;
	for (int i = 0; i < rebuild->n; i++)
	{
		JeDispatchKey lowest;
		DispatchQueue *q = NULL;

		if (lowest_since(t, rebuild->s0, rebuild->names[i],
						 rebuild->empty[i] ? NULL : &rebuild->keys[i], &lowest))
			q = add_queue(t, rebuild->names[i], &lowest);
		else if (t->state == DISPATCH_OVERFLOW)
			q = add_queue(t, rebuild->names[i], &key_max);
		if (q != NULL)
			q->advanced = rebuild->advanced[i];
	}
	/*
	 * Queues whose first candidates committed after the walk's snapshot: in
	 * a table that overflows, one may be a queue the walk left out.
	 */
	for (uint64 s = rebuild->s0 + 1; s <= t->seq && t->state == DISPATCH_COMPLETE; s++)
	{
		DispatchLowering *r = &t->ring[s % DISPATCH_RING];
		const char *name = r->name;
		JeDispatchKey lowest;

		if (r->seq != s)
			continue;
		if (r->len >= DISPATCH_RING_NAME)
		{
			/*
			 * The ring's start, length and hash may be another listed
			 * queue's too: only the whole name says whether it is listed.
			 */
			DispatchLongName *l = &t->long_names[s % DISPATCH_LONG_NAMES];

			if (l->seq != s)
			{
				overflow_locked(t); /* its whole name is no longer kept */
				break;
			}
			name = l->name;
		}
		if (find_queue(t, name) != NULL)
			continue;
		(void) lowest_since(t, rebuild->s0, name, NULL, &lowest);
		if (add_queue(t, name, &lowest) == NULL)
			overflow_locked(t);
	}
}

/*
 * Moves each mark up to what this transaction's claims proved (see the
 * file's header): the lowest of the first candidate found and the ring's
 * lowerings after the claim read the marks, if the mark is below it.  A
 * queue found without candidates leaves a complete table; in one that
 * overflows it stays, its mark key_max, as it could not come back before
 * a rebuild.  Lock held.
 */
static void
apply_advances(DispatchTable *t)
{
	for (int i = 0; i < nadvances && t->state != DISPATCH_INVALID; i++)
	{
		PendingAdvance *a = &advances[i];
		DispatchQueue *q;
		JeDispatchKey lowest;

		if (!ring_holds(t, a->s0) || (q = find_queue(t, a->name)) == NULL)
			continue;			/* not provable, or empty already */
		if (!lowest_since(t, a->s0, a->name, a->empty ? NULL : &a->first, &lowest))
		{
			if (t->state == DISPATCH_COMPLETE)
				q->used = false;
			else
			{
				q->mark = key_max;
				q->advanced = true;
			}
		}
		else if (je_dispatch_key_cmp(&lowest, &q->mark) > 0)
		{
			q->mark = lowest;
			q->advanced = true;
		}
	}
}

/*
 * What a release found becomes the table's next_deferred and released_to,
 * unless a commit deferred jobs since its snapshot (they may come before
 * either); then the jobs this transaction deferred lower both.  Lock held
 * exclusively.
 */
static void
apply_deferred(DispatchTable *t)
{
	TimestampTz next = (TimestampTz) pg_atomic_read_u64(&t->next_deferred);
	TimestampTz upto = (TimestampTz) pg_atomic_read_u64(&t->released_to);

	if (deferred_found.valid && pg_atomic_read_u64(&t->deferred_gen) == deferred_found.gen)
	{
		next = deferred_found.next;
		upto = Max(upto, deferred_found.upto);
	}
	else if (deferred_found.valid)
		next = Min(next, deferred_found.next);
	next = Min(next, pending_deferred);
	/*
	 * A job deferred by a transaction that commits after its run_at, or
	 * after a release looked past it (a long transaction), is looked at by
	 * the next release, not left to a sweep.
	 */
	if (pending_deferred != DT_NOEND)
		upto = Min(upto, pending_deferred - 1);
	pg_atomic_write_u64(&t->released_to, (uint64) upto);
	pg_atomic_write_u64(&t->next_deferred, (uint64) next);
	if (pending_deferred != DT_NOEND)
		pg_atomic_fetch_add_u64(&t->deferred_gen, 1);
}

/*
 * COMMIT: the rows this transaction made candidates are visible, so their
 * queues' marks are lowered and the lowerings recorded, before executors
 * are woken (wakeup.c calls this first); then what its claims found is
 * applied, the lowerings of this very commit included.
 */
static void
apply_at_commit(void)
{
	DispatchTable *t = find_table();

	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	if (pending_reset)
		reset_locked(t);
	apply_lowerings(t);
	if (rebuild != NULL && rebuild->valid)
		apply_rebuild(t);
	apply_advances(t);
	apply_deferred(t);
	LWLockRelease(t->lock);
}

/* At PREPARE: the prepared rows are found by the rebuild of an invalid table. */
static void
reset_at_prepare(void)
{
	DispatchTable *t = find_table();

	if (t == NULL)
		return;
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	reset_locked(t);
	LWLockRelease(t->lock);
}

/* The transaction callback's part (wakeup.c), before any wake-up. */
void
je_dispatch_xact_event(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (npending > 0 || pending_reset || pending_unlisted || nadvances > 0 ||
				(rebuild != NULL && rebuild->valid) || deferred_found.valid ||
				pending_deferred != DT_NOEND)
				apply_at_commit();
			break;
		case XACT_EVENT_PREPARE:
			if (npending > 0 || pending_reset || pending_unlisted)
				reset_at_prepare();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			break;
		default:
			return;
	}
	npending = 0;
	pending_reset = false;
	pending_unlisted = false;
	nadvances = 0;
	if (rebuild != NULL)
		rebuild->valid = false;
	pending_deferred = DT_NOEND;
	deferred_found.valid = false;
}

/*
 * What the claims of a subtransaction found goes to its parent when it
 * commits, and is dropped when it rolls back (wakeup.c calls this).  Its
 * lowerings are kept either way: a mark too low is only conservative.
 */
void
je_dispatch_subxact_event(SubXactEvent event)
{
	int			level = GetCurrentTransactionNestLevel();

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			for (int i = 0; i < nadvances; i++)
				if (advances[i].nest_level >= level)
					advances[i].nest_level = level - 1;
			if (rebuild != NULL && rebuild->valid && rebuild->nest_level >= level)
				rebuild->nest_level = level - 1;
			if (deferred_found.valid && deferred_found.nest_level >= level)
				deferred_found.nest_level = level - 1;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			while (nadvances > 0 && advances[nadvances - 1].nest_level >= level)
				nadvances--;
			if (rebuild != NULL && rebuild->nest_level >= level)
				rebuild->valid = false;
			if (deferred_found.nest_level >= level)
				deferred_found.valid = false;
			break;
		default:
			break;
	}
}

/*
 * Notes that this transaction makes `key` of queue `name` (`len` bytes, not
 * terminated) a candidate: called by the lifecycle guard (guard.c) for
 * every row it lets be written as a candidate, by whatever statement, so
 * that its queue's mark is lowered when the transaction commits.  A row
 * noted and then not written (an INSERT skipped by ON CONFLICT DO
 * NOTHING) only lowers a mark more than needed, which is safe.
 */
void
je_dispatch_note_candidate(const char *name, int len, const JeDispatchKey *key)
{
	PendingLowering *p = NULL;

	if (len >= DISPATCH_NAME)
	{
		/* The table cannot hold it: it overflows at commit. */
		pending_unlisted = true;
		return;
	}
	if (last_pending < npending && strncmp(pending[last_pending].name, name, len) == 0 &&
		pending[last_pending].name[len] == '\0')
		p = &pending[last_pending];
	for (int i = 0; p == NULL && i < npending; i++)
	{
		if (strncmp(pending[i].name, name, len) == 0 && pending[i].name[len] == '\0')
		{
			p = &pending[i];
			last_pending = i;
		}
	}
	if (p != NULL)
	{
		if (je_dispatch_key_cmp(key, &p->key) < 0)
			p->key = *key;
		return;
	}
	if (npending == maxpending)
	{
		int			newmax = Max(8, maxpending * 2);

		pending = pending == NULL
			? MemoryContextAlloc(TopMemoryContext, newmax * sizeof(PendingLowering))
			: repalloc(pending, newmax * sizeof(PendingLowering));
		maxpending = newmax;
	}
	p = &pending[npending];
	last_pending = npending++;
	memcpy(p->name, name, len);
	p->name[len] = '\0';
	p->key = *key;
}

/*
 * Notes that this transaction writes a job deferred until `run_at`
 * (blocked 't', by the lifecycle guard): when it commits, the table's
 * next_deferred is lowered to it, so that claims release the job when it
 * is due (deferred.c).  Kept when a subtransaction rolls back: a time too
 * early only costs a release that finds nothing.
 */
void
je_dispatch_note_deferred(TimestampTz run_at)
{
	pending_deferred = Min(pending_deferred, run_at);
}

/*
 * Whether a deferred job may be due at `now`, for a claim about to pick;
 * *gen gets deferred_gen, for je_dispatch_deferred_found, and *upto the
 * time before which the due jobs were all looked at.  False in a database
 * no supervisor serves yet.
 */
bool
je_dispatch_deferred_due(TimestampTz now, uint64 *gen, TimestampTz *upto)
{
	DispatchTable *t = find_table();

	*gen = 0;
	*upto = DT_NOBEGIN;
	if (t == NULL)
		return false;
	*gen = pg_atomic_read_u64(&t->deferred_gen);
	pg_read_barrier();
	*upto = (TimestampTz) pg_atomic_read_u64(&t->released_to);
	return (TimestampTz) pg_atomic_read_u64(&t->next_deferred) <= now;
}

/*
 * Whether a sweep is due: a look at every deferred job due, not only those
 * due after released_to, once every `interval_ms` per database.  With
 * `take`, the caller is to sweep now, and only one caller per interval is
 * told so.
 */
bool
je_dispatch_deferred_sweep(TimestampTz now, int interval_ms, bool take)
{
	DispatchTable *t = find_table();
	uint64		last;

	if (t == NULL)
		return false;
	last = pg_atomic_read_u64(&t->last_sweep);
	if (now < TimestampTzPlusMilliseconds((TimestampTz) last, interval_ms))
		return false;
	return !take || pg_atomic_compare_exchange_u64(&t->last_sweep, &last, (uint64) now);
}

/*
 * A release that read deferred_gen `gen` before its snapshot looked at
 * every deferred job due by `upto`, and found that the next one not yet
 * looked at is due at `next` (DT_NOEND: none): the table says so from this
 * transaction's commit on.
 */
void
je_dispatch_deferred_found(uint64 gen, TimestampTz next, TimestampTz upto)
{
	deferred_found.valid = true;
	deferred_found.nest_level = GetCurrentTransactionNestLevel();
	deferred_found.gen = gen;
	deferred_found.next = next;
	deferred_found.upto = upto;
}

/*
 * Notes that the rows written while this transaction's changes hold may not
 * all be noted (the lifecycle guard was disabled, dropped or replaced: see
 * guard.c): the table is invalid from its commit on, and no rebuild
 * fills it while the guard is not enabled ALWAYS.
 */
void
je_dispatch_reset_at_commit(void)
{
	pending_reset = true;
}

/*
 * The marks of this database's listed queues, unless its table is invalid,
 * for a claim in READ COMMITTED (whose next statement takes a snapshot
 * after this).  False: the claim walks every queue instead.
 * marks->overflow: queues not listed may have candidates too.  The
 * candidates this transaction made itself, which it sees, lower the marks
 * it is given; in a complete table, a queue of them not listed is given
 * with its key (it had no committed candidate), but not in one that
 * overflows (a claim in the transaction of a submit, as tests make).
 */
bool
je_dispatch_read(JeDispatchMarks *marks)
{
	DispatchTable *t = find_table();
	DispatchState state;

	marks->n = 0;
	marks->overflow = false;
	if (t == NULL || IsolationUsesXactSnapshot() || pending_reset)
		return false;
	marks->names = palloc(sizeof(char *) * (DISPATCH_QUEUES + npending));
	marks->keys = palloc(sizeof(JeDispatchKey) * (DISPATCH_QUEUES + npending));
	LWLockAcquire(t->lock, LW_SHARED);
	state = t->state;
	marks->seq = t->seq;
	if (state != DISPATCH_INVALID)
		read_marks_locked(t, marks, NULL);
	LWLockRelease(t->lock);
	if (state == DISPATCH_INVALID)
		return false;
	if (pending_unlisted)
		state = DISPATCH_OVERFLOW;
	marks->overflow = state == DISPATCH_OVERFLOW;
	for (int i = 0; i < npending; i++)
	{
		int			m = 0;

		while (m < marks->n && strcmp(marks->names[m], pending[i].name) != 0)
			m++;
		if (m < marks->n)
		{
			if (je_dispatch_key_cmp(&pending[i].key, &marks->keys[m]) < 0)
				marks->keys[m] = pending[i].key;
		}
		else if (!marks->overflow)
		{
			marks->names[marks->n] = pstrdup(pending[i].name);
			marks->keys[marks->n++] = pending[i].key;
		}
	}
	return true;
}

/*
 * The new mark of queue `name` from its first candidate `first` (NULL: it
 * had none) in a snapshot taken after sequence number s0: the lowest of it
 * and the ring's lowerings of the queue after s0.  False: none at all.
 * The caller holds the lock and has checked that the ring did not wrap.
 */
static bool
lowest_since(DispatchTable *t, uint64 s0, const char *name, const JeDispatchKey *first,
			 JeDispatchKey *lowest)
{
	bool		any = first != NULL;
	int			len = strlen(name);
	uint32		hash = len >= DISPATCH_RING_NAME ? name_hash(name, len) : 0;

	if (first != NULL)
		*lowest = *first;
	for (uint64 s = s0 + 1; s <= t->seq; s++)
	{
		DispatchLowering *r = &t->ring[s % DISPATCH_RING];

		if (r->seq == s && ring_names(r, name, len, hash) &&
			(!any || je_dispatch_key_cmp(&r->key, lowest) < 0))
		{
			*lowest = r->key;
			any = true;
		}
	}
	return any;
}

/* Whether lowerings after s0 are all still in the ring, and no reset came. */
static bool
ring_holds(DispatchTable *t, uint64 s0)
{
	return t->reset_seq <= s0 && t->seq - s0 < DISPATCH_RING;
}

/*
 * A claim that read the marks at sequence number s0 found, for each of the
 * n queues names[i], its first candidate at or after the mark, due or not,
 * first[i] (or none: empty[i]).  Each mark moves up to what that proves
 * when the transaction commits.
 */
void
je_dispatch_advance(uint64 s0, int n, char **names, JeDispatchKey *first, bool *empty)
{
	int			level = GetCurrentTransactionNestLevel();

	if (IsolationUsesXactSnapshot())
		return;					/* its snapshot may predate s0 */
	if (nadvances + n > maxadvances)
	{
		int			newmax = Max(Max(16, maxadvances * 2), nadvances + n);

		advances = advances == NULL
			? MemoryContextAlloc(TopMemoryContext, newmax * sizeof(PendingAdvance))
			: repalloc(advances, newmax * sizeof(PendingAdvance));
		maxadvances = newmax;
	}
	for (int i = 0; i < n; i++)
	{
		PendingAdvance *a = &advances[nadvances];

		if (strlen(names[i]) >= DISPATCH_NAME)
			continue;			/* not held, so not advanced */
		a->s0 = s0;
		a->nest_level = level;
		a->empty = empty[i];
		strlcpy(a->name, names[i], DISPATCH_NAME);
		if (!empty[i])
			a->first = first[i];
		nadvances++;
	}
}

/*
 * Every queue's first candidate, due or not, in queue order: one descent
 * per queue with candidates, for an invalid table.  At most
 * DISPATCH_WALK_MAX rows: as many says there may be more.
 */
static const char *first_candidates_sql =
"WITH RECURSIVE h AS ("
"    (SELECT j.queue, j.priority, j.run_at, j.id"
"       FROM job_engine._jobs j"
"      WHERE " JE_CANDIDATE
"      ORDER BY j.queue, j.priority, j.run_at, j.id"
"      LIMIT 1)"
"    UNION ALL"
"    SELECT n.* FROM h CROSS JOIN LATERAL ("
"        SELECT j.queue, j.priority, j.run_at, j.id"
"          FROM job_engine._jobs j"
"         WHERE " JE_CANDIDATE
"           AND j.queue OPERATOR(pg_catalog.>) h.queue"
"         ORDER BY j.queue, j.priority, j.run_at, j.id"
"         LIMIT 1) n)"
"SELECT h.queue, h.priority, h.run_at, h.id, NULL::pg_catalog.int8 FROM h"
" LIMIT " CppAsString2(DISPATCH_WALK_MAX);

/*
 * The same for a table that overflows, without walking a listed queue
 * from the start of its range: each listed queue $1 from its mark ($2, $3,
 * $4), its first candidate (NULL: none) and its place in $1, then the
 * first candidate of each queue not listed (JE_GAP_WALK), place NULL.
 */
static const char *first_marked_sql =
"WITH RECURSIVE" JE_GAP_WALK("$1", "")
"(SELECT m.queue, f.priority, f.run_at, f.id, m.k"
"   FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]),"
"                   pg_catalog.unnest($2::pg_catalog.int4[]),"
"                   pg_catalog.unnest($3::pg_catalog.timestamptz[]),"
"                   pg_catalog.unnest($4::pg_catalog.int8[]))"
"        WITH ORDINALITY AS m(queue, priority, run_at, id, k)"
"   LEFT JOIN LATERAL ("
"       SELECT j.priority, j.run_at, j.id FROM job_engine._jobs j"
"        WHERE j.queue OPERATOR(pg_catalog.=) m.queue AND " JE_CANDIDATE
"          AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=)"
"              ROW(m.priority, m.run_at, m.id)"
"        ORDER BY j.priority, j.run_at, j.id"
"        LIMIT 1) f ON true)"
" UNION ALL"
" (SELECT u.queue, u.priority, u.run_at, u.id, NULL::pg_catalog.int8 FROM u"
"   LIMIT " CppAsString2(DISPATCH_WALK_MAX) ")";

/*
 * When the walk above stopped at DISPATCH_WALK_MAX queues, which it visits
 * in name order, queues with a due candidate may lie past where it stopped:
 * up to DISPATCH_WALK_MAX more queues not listed, each with a due
 * candidate, and each queue's first candidate, due or not (its mark must
 * not lie above any).  Without marks ($1 empty) from every queue's start,
 * else in the gaps between the listed queues (JE_GAP_WALK).  Same columns.
 */
#define DUE_FIRST_SQL(WALK, FROM) \
"WITH RECURSIVE" WALK \
"SELECT d.queue, f.priority, f.run_at, f.id, NULL::pg_catalog.int8" \
"  FROM (SELECT " FROM ".queue FROM " FROM " LIMIT " CppAsString2(DISPATCH_WALK_MAX) ") d" \
"  CROSS JOIN LATERAL (" \
"      SELECT j.priority, j.run_at, j.id FROM job_engine._jobs j" \
"       WHERE j.queue OPERATOR(pg_catalog.=) d.queue AND " JE_CANDIDATE \
"       ORDER BY j.priority, j.run_at, j.id LIMIT 1) f"
static const char *due_first_sql = DUE_FIRST_SQL(
" h AS ("
"    (SELECT j.queue FROM job_engine._jobs j WHERE " JE_CANDIDATE JE_DUE JE_WALK_NEXT ")"
"    UNION ALL"
"    SELECT n.* FROM h CROSS JOIN LATERAL ("
"        SELECT j.queue FROM job_engine._jobs j WHERE " JE_CANDIDATE JE_DUE
"           AND j.queue OPERATOR(pg_catalog.>) h.queue" JE_WALK_NEXT ") n)", "h");
static const char *due_marked_sql = DUE_FIRST_SQL(JE_GAP_WALK("$1", JE_DUE), "u");

/*
 * Whether a prepared transaction holds a lock on job_engine._jobs that a
 * write takes: rows it made candidates become visible with no lowering when
 * it commits.  A prepared transaction that only read _jobs (ACCESS SHARE)
 * made nothing claimable.
 */
static const char *prepared_sql =
"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
"                WHERE l.pid IS NULL AND l.locktype OPERATOR(pg_catalog.=) 'relation'"
"                  AND l.database OPERATOR(pg_catalog.=) $1"
"                  AND l.relation OPERATOR(pg_catalog.=) 'job_engine._jobs'::pg_catalog.regclass"
"                  AND l.mode OPERATOR(pg_catalog.<>) 'AccessShareLock')";

/*
 * Whether a prepared transaction that wrote _jobs exists now.  Asked before
 * the walk and after it: one there before may commit (COMMIT PREPARED runs
 * none of our callbacks) after the walk's snapshot missed its rows and
 * before a check made after the walk; one prepared after the walk began is
 * caught by that later check, or by the reset its PREPARE makes.
 */
static bool
prepared_writer_exists(SPIPlanPtr plan)
{
	Datum		dboid = ObjectIdGetDatum(MyDatabaseId);
	bool		isnull;

	if (SPI_execute_plan(plan, &dboid, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "job_engine: looking for prepared transactions failed");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Whether the lifecycle guard, which notes the rows that become candidates
 * (and the running moves: running.c), fires for every row written to
 * _jobs, and the TRUNCATE trigger for every TRUNCATE: both enabled ALWAYS,
 * as release 1.1 makes them.  A database still at release 1.0, which this
 * library serves until its ALTER EXTENSION job_engine UPDATE, has the
 * guard enabled only outside replication, and a superuser may disable
 * either.  Nor may another BEFORE ROW trigger of INSERT or UPDATE fire
 * after the guard (BEFORE ROW triggers fire in the order of their names,
 * 3 and 20 in tgtype being ROW | BEFORE and INSERT | UPDATE): it could
 * change the row the guard noted, its key or its state (test 807).
 * Without them the shared tables are never trusted: claims walk from
 * queue to queue and count running rows.
 */
static const char *rows_noted_sql =
"SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t"
"         WHERE t.tgrelid OPERATOR(pg_catalog.=) 'job_engine._jobs'::pg_catalog.regclass"
"           AND t.tgname OPERATOR(pg_catalog.=) ANY ('{jobs_lifecycle_guard,jobs_running_truncated}')"
"           AND t.tgenabled OPERATOR(pg_catalog.=) 'A') OPERATOR(pg_catalog.=) 2"
"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t"
"                    WHERE t.tgrelid OPERATOR(pg_catalog.=) 'job_engine._jobs'::pg_catalog.regclass"
"                      AND t.tgenabled OPERATOR(pg_catalog.<>) 'D'"
"                      AND t.tgtype OPERATOR(pg_catalog.&) 3::pg_catalog.int2"
"                          OPERATOR(pg_catalog.=) 3::pg_catalog.int2"
"                      AND t.tgtype OPERATOR(pg_catalog.&) 20::pg_catalog.int2"
"                          OPERATOR(pg_catalog.<>) 0::pg_catalog.int2"
"                      AND t.tgname OPERATOR(pg_catalog.>) 'jobs_lifecycle_guard'::pg_catalog.name)";

/*
 * See rows_noted_sql; in the current transaction and SPI connection.  Read
 * in a snapshot taken now, after the caller marked its rebuild as begun:
 * a trigger disabled by a commit this snapshot misses resets the table (or
 * makes the counts untrusted) after the rebuild began, which undoes it.
 */
bool
je_dispatch_rows_noted(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;

	if (plan == NULL)
		plan = je_keep_plan(rows_noted_sql, 0, NULL);
	PushActiveSnapshot(GetLatestSnapshot());
	if (SPI_execute_plan(plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "job_engine: looking for the lifecycle guard failed");
	PopActiveSnapshot();
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* One queue found by a rebuild's walk. */
typedef struct RebuildRow
{
	char	   *name;
	bool		empty;			/* a listed queue found without candidates */
	bool		advanced;		/* a listed queue whose mark was advanced */
	bool		due;
	JeDispatchKey key;
} RebuildRow;

/*
 * Which queues a table that cannot hold them all keeps, best first: those
 * with a due candidate; then listed queues whose marks were advanced (jobs
 * were claimed from them: the start of their range may hold the index
 * entries of many, which walking a queue not listed would read in every
 * claim); of the others, none (je_dispatch_rebuild), in the order: by
 * their first candidate's run_at, then listed queues found empty.  Jobs
 * due far in the future, in many queues, do not take the marks of the
 * queues in use.  Whatever is left out is found by the walk of the gaps
 * (JE_GAP_WALK): the choice is one of cost only.
 */
static int
rebuild_row_cmp(const void *a, const void *b)
{
	const RebuildRow *x = a;
	const RebuildRow *y = b;

	if (x->due != y->due)
		return x->due ? -1 : 1;
	if (x->advanced != y->advanced)
		return x->advanced ? -1 : 1;
	if (x->empty != y->empty)
		return x->empty ? 1 : -1;
	if (x->empty)
		return 0;
	if (x->key.run_at != y->key.run_at)
		return x->key.run_at < y->key.run_at ? -1 : 1;
	return je_dispatch_key_cmp(&x->key, &y->key);
}

/*
 * Adds the rows of the walk just run (SPI_tuptable) to rows[n..], and
 * returns the new count.  Of a walk of the queues with due candidates
 * (due_walk), each is due, and one found already by the first walk is not
 * added again.  A name too long to hold makes the table overflow.
 */
static int
rebuild_rows(RebuildRow *rows, int n, const bool *advanced, TimestampTz now,
			 bool due_walk, int *nempty, bool *overflow)
{
	int			nfirst = n;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		RebuildRow *r = &rows[n];
		bool		isnull;
		bool		seen = false;
		Datum		d;

		r->name = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		if (strlen(r->name) >= DISPATCH_NAME)
		{
			*overflow = true;	/* a name too long to hold */
			continue;
		}
		for (int k = 0; due_walk && k < nfirst && !seen; k++)
		{
			if (strcmp(rows[k].name, r->name) == 0)
			{
				rows[k].due = true;
				seen = true;
			}
		}
		if (seen)
			continue;
		d = SPI_getbinval(tup, desc, 5, &isnull);
		r->advanced = !isnull && advanced[DatumGetInt64(d) - 1];
		d = SPI_getbinval(tup, desc, 2, &isnull);
		r->empty = isnull;
		*nempty += r->empty;
		r->due = false;
		if (!isnull)
		{
			r->key.priority = DatumGetInt32(d);
			r->key.run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			r->key.id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
			r->due = due_walk || r->key.run_at <= now;
		}
		n++;
	}
	return n;
}

/* The marks read for a walk, as the arguments of first_marked_sql. */
static void
marks_as_args(JeDispatchMarks *marks, Datum *args)
{
	Datum	   *names = palloc(sizeof(Datum) * marks->n);
	Datum	   *prios = palloc(sizeof(Datum) * marks->n);
	Datum	   *run_ats = palloc(sizeof(Datum) * marks->n);
	Datum	   *ids = palloc(sizeof(Datum) * marks->n);

	for (int i = 0; i < marks->n; i++)
	{
		names[i] = CStringGetTextDatum(marks->names[i]);
		prios[i] = Int32GetDatum(marks->keys[i].priority);
		run_ats[i] = TimestampTzGetDatum(marks->keys[i].run_at);
		ids[i] = Int64GetDatum(marks->keys[i].id);
	}
	args[0] = PointerGetDatum(construct_array(names, marks->n, TEXTOID, -1, false, TYPALIGN_INT));
	args[1] = PointerGetDatum(construct_array(prios, marks->n, INT4OID, 4, true, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(run_ats, marks->n, TIMESTAMPTZOID, 8,
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[3] = PointerGetDatum(construct_array(ids, marks->n, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
}

/* Runs a rebuild's walk: from the marks read, or without any. */
static void
run_walk(JeDispatchMarks *marks, SPIPlanPtr marked_plan, SPIPlanPtr first_plan)
{
	int			rc;

	if (marks->n > 0)
	{
		Datum		args[4];

		marks_as_args(marks, args);
		rc = SPI_execute_plan(marked_plan, args, NULL, false, 0);
	}
	else
		rc = SPI_execute_plan(first_plan, NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "job_engine: rebuilding the claim marks failed");
}

/*
 * While the table is not complete, at most once a second: one walk of
 * every queue's first candidate, in the current transaction and SPI
 * connection, under the claim's settings (claim.c), which fills the table
 * when the transaction commits.  An invalid table is walked from every
 * queue's start; one that overflows from its marks, and the gaps between
 * its queues (JE_GAP_WALK).  With more queues than it holds, the table
 * keeps the best (rebuild_row_cmp) and overflows.
 */
void
je_dispatch_rebuild(void)
{
	static SPIPlanPtr first_plan = NULL;
	static SPIPlanPtr marked_plan = NULL;
	static SPIPlanPtr prepared_plan = NULL;
	static SPIPlanPtr due_first_plan = NULL;
	static SPIPlanPtr due_marked_plan = NULL;
	DispatchTable *t = find_table();
	TimestampTz now = GetCurrentTimestamp();
	JeDispatchMarks marks;
	bool		advanced[DISPATCH_QUEUES];
	uint64		s0;
	bool		overflow = false;
	int			n;
	int			nempty = 0;
	RebuildRow *rows;

	if (t == NULL || IsolationUsesXactSnapshot())
		return;
	marks.n = 0;
	marks.names = palloc(sizeof(char *) * DISPATCH_QUEUES);
	marks.keys = palloc(sizeof(JeDispatchKey) * DISPATCH_QUEUES);
	LWLockAcquire(t->lock, LW_EXCLUSIVE);
	if (t->state == DISPATCH_COMPLETE ||
		!TimestampDifferenceExceeds(t->last_rebuild, now, DISPATCH_REBUILD_EVERY_MS))
	{
		/* Complete, or a rebuild was tried lately: none now. */
		LWLockRelease(t->lock);
		return;
	}
	t->last_rebuild = now;
	s0 = t->seq;
	if (t->state == DISPATCH_OVERFLOW)
		read_marks_locked(t, &marks, advanced);
	LWLockRelease(t->lock);
	if (first_plan == NULL)
	{
		Oid			oidarg[1] = {OIDOID};
		Oid			marked_args[4] = {TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID,
		INT8ARRAYOID};

		first_plan = je_keep_generic_plan(first_candidates_sql, 0, NULL);
		marked_plan = je_keep_generic_plan(first_marked_sql, 4, marked_args);
		due_first_plan = je_keep_generic_plan(due_first_sql, 0, NULL);
		due_marked_plan = je_keep_generic_plan(due_marked_sql, 4, marked_args);
		prepared_plan = je_keep_plan(prepared_sql, 1, oidarg);
	}
	if (!je_dispatch_rows_noted())
		return;
	if (prepared_writer_exists(prepared_plan))
		return;
	run_walk(&marks, marked_plan, first_plan);
	rows = palloc(sizeof(RebuildRow) * (SPI_processed + DISPATCH_WALK_MAX));
	n = rebuild_rows(rows, 0, advanced, now, false, &nempty, &overflow);
	/* One row per listed queue, then the walk's: as many as it returns at most? */
	if (SPI_processed - marks.n >= DISPATCH_WALK_MAX)
	{
		/*
		 * The walk stopped, in name order: the queues with due candidates
		 * past it are found by a walk of those only (test 820).
		 */
		overflow = true;
		run_walk(&marks, due_marked_plan, due_first_plan);
		n = rebuild_rows(rows, n, advanced, now, true, &nempty, &overflow);
	}
	/*
	 * Listed queues found without candidates do not count: a complete
	 * table leaves them out (test 805).
	 */
	if (n - nempty > DISPATCH_QUEUES)
		overflow = true;
	if (!overflow && n > DISPATCH_QUEUES)
	{
		int			kept = 0;

		for (int i = 0; i < n; i++)
			if (!rows[i].empty)
				rows[kept++] = rows[i];
		n = kept;
	}
	if (overflow)
	{
		/*
		 * Only queues with a due candidate, or whose marks were advanced,
		 * are worth an entry: each listed queue costs every claim a descent
		 * or two, while a queue of jobs not due, never claimed from, costs
		 * the walk of the gaps no more than a look at its index entries,
		 * and is listed by the next rebuild once it is due.
		 */
		qsort(rows, n, sizeof(RebuildRow), rebuild_row_cmp);
		n = Min(n, DISPATCH_QUEUES);
		while (n > 0 && !rows[n - 1].due && !rows[n - 1].advanced)
			n--;
	}
	if (prepared_writer_exists(prepared_plan))
		return;

	if (rebuild == NULL)
		rebuild = MemoryContextAllocZero(TopMemoryContext, sizeof(PendingRebuild));
	rebuild->valid = true;
	rebuild->s0 = s0;
	rebuild->nest_level = GetCurrentTransactionNestLevel();
	rebuild->overflow = overflow;
	rebuild->n = n;
	for (int i = 0; i < n; i++)
	{
		strlcpy(rebuild->names[i], rows[i].name, DISPATCH_NAME);
		rebuild->keys[i] = rows[i].key;
		rebuild->empty[i] = rows[i].empty;
		rebuild->advanced[i] = rows[i].advanced;
	}
}

PG_FUNCTION_INFO_V1(job_engine_dispatch_marks);

/*
 * job_engine_internal._dispatch_marks(): this database's table, for tests and
 * troubleshooting: one row per queue held, with its mark.
 */
Datum
job_engine_dispatch_marks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DispatchTable *t;

	InitMaterializedSRF(fcinfo, 0);
	t = find_table();
	if (t == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(t->lock, LW_SHARED);
	for (int i = 0; i < DISPATCH_QUEUES; i++)
	{
		DispatchQueue *q = &t->queues[i];
		Datum		values[4];
		bool		nulls[4] = {false};

		if (!q->used)
			continue;
		values[0] = CStringGetTextDatum(q->name);
		values[1] = Int32GetDatum(q->mark.priority);
		values[2] = TimestampTzGetDatum(q->mark.run_at);
		values[3] = Int64GetDatum(q->mark.id);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(t->lock);
	PG_RETURN_VOID();
}

/* This database's table's state; invalid while no supervisor serves it. */
static DispatchState
read_state(void)
{
	DispatchTable *t = find_table();
	DispatchState state = DISPATCH_INVALID;

	if (t != NULL)
	{
		LWLockAcquire(t->lock, LW_SHARED);
		state = t->state;
		LWLockRelease(t->lock);
	}
	return state;
}

PG_FUNCTION_INFO_V1(job_engine_dispatch_complete);

/*
 * job_engine_internal._dispatch_complete(): whether the table lists every
 * queue with candidates (false too while it overflows: _dispatch_state()
 * tells the two apart).
 */
Datum
job_engine_dispatch_complete(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(read_state() == DISPATCH_COMPLETE);
}

PG_FUNCTION_INFO_V1(job_engine_dispatch_state);

/*
 * job_engine_internal._dispatch_state(): 'complete' (claims take every
 * queue from its mark), 'overflow' (the listed queues from their marks,
 * the others by the walk of the gaps) or 'invalid' (every queue from its
 * start).
 */
Datum
job_engine_dispatch_state(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {
		[DISPATCH_INVALID] = "invalid",
		[DISPATCH_OVERFLOW] = "overflow",
		[DISPATCH_COMPLETE] = "complete",
	};

	PG_RETURN_TEXT_P(cstring_to_text(names[read_state()]));
}
