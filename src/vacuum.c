/*
 * vacuum.c
 *	  The supervisor's vacuum of job_engine._jobs and _attempts, and its
 *	  rebuild of their indexes after an old snapshot held them back.
 *
 * Every claim moves jobs out of jobs_claim_idx's predicate, leaving dead
 * entries exactly where the next claim starts its index scan, in queue
 * order.  Until a vacuum removes them, each claim steps over all of them:
 * at 2,000 jobs/s that is hundreds of index pages per claim within a
 * minute, and autovacuum visits a database at most once per
 * autovacuum_naptime.  So the supervisor vacuums the table itself once its
 * executors have claimed job_engine.vacuum_after jobs since the last time;
 * _attempts with it, whose every row is inserted then updated once.
 *
 * INDEX_CLEANUP ON, because the index entries are the point: with few dead
 * heap pages VACUUM would otherwise skip the indexes.  SKIP_LOCKED, and a
 * conditional lock first, so that the supervisor never waits behind (or
 * cancels) an autovacuum or a user's VACUUM of the table.  Every other
 * lock the vacuum waits for is waited for at most VACUUM_LOCK_TIMEOUT_MS:
 * at its end a vacuum overwrites in place the pg_class row of each table
 * and index it vacuumed, then its database's pg_database row, and an
 * in-place update waits for any open transaction that updated the row (a
 * GRANT on the table; ALTER DATABASE ... CONNECTION LIMIT, OWNER TO, GRANT
 * ON DATABASE).  The supervisor's whole round (crash recovery, executors
 * started again, purge) would wait with it, for as long as the user left
 * the transaction open.  From PostgreSQL 16 the last step is left out
 * altogether (SKIP_DATABASE_STATS): it only moves datfrozenxid on, which
 * autovacuum does at the end of each of its visits to the database (an
 * anti-wraparound one comes even with autovacuum off), and which the
 * supervisor's vacuums, not aggressive, seldom move; it also reads all of
 * pg_class each time (vacuumdb leaves it out per table for that reason).
 * Up to 15 the step runs and gives up after the timeout, like any other
 * wait; what the vacuum did to the tables before it is kept.  Skipped while
 * the removal horizon has not moved since the last one (an old snapshot is
 * held somewhere): it could remove nothing more.  TRUNCATE off:
 * giving empty tail pages back takes an exclusive lock that would stall
 * every claim; autovacuum gives them back (it tries the lock without
 * waiting, and lets go as soon as anyone waits for it).
 *
 * While a snapshot is held, every job made and finished meanwhile stays in
 * the heap and in every index, in each of its row versions.  Once it is
 * released, vacuum makes the heap's space free again and autovacuum gives
 * its empty tail back, but a btree never shrinks: its emptied pages are
 * only reused, and an index on random keys (correlation_id) keeps its
 * half-empty pages.  So after the first vacuum that follows a held
 * horizon, each index of the two tables that has grown to more than twice
 * its size at the last vacuum before the hold is rebuilt (REINDEX, the
 * heap then holds only the live rows).  One index at a time, each in a
 * transaction of its own, with locks taken only when free (a share lock on
 * the table, which stops claims and submits for the length of the build,
 * and an exclusive lock on the index): never queued behind a user's
 * transaction, so no claim waits behind the rebuild's wait either.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "commands/defrem.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "settings.h"
#include "vacuum.h"

/* The removal horizon at the last vacuum: nothing older could be removed. */
static TransactionId horizon_at_last = InvalidTransactionId;

typedef enum VacuumResult
{
	VACUUM_BUSY,				/* the table was being vacuumed, or is gone */
	VACUUM_HELD,				/* the horizon has not moved: skipped */
	VACUUM_DONE
} VacuumResult;

/* An index of the two tables and its size (blocks) at the last vacuum. */
typedef struct IndexSize
{
	Oid			index;
	BlockNumber blocks;
} IndexSize;

/*
 * The sizes of the indexes at the last vacuum that followed no held
 * horizon (in TopMemoryContext), whether a vacuum was skipped for a held
 * horizon since, and whether indexes grown meanwhile are still to be
 * rebuilt.
 */
static List *index_sizes = NIL;
static bool held_back = false;
static bool rebuild_due = false;
static TimestampTz rebuild_tried = 0;

/* An index under this many blocks is never rebuilt: it costs nothing. */
#define REBUILD_MIN_BLOCKS 32
/*
 * The longest wait for the table's lock of a rebuild.  While the supervisor
 * waits for it, claims and submits queue behind it: the wait is short, and
 * given up rather than prolonged behind a transaction that stays open; the
 * index's own lock is only taken when free (a transaction that read the
 * table holds it until it ends).  The rebuild is then tried again
 * REBUILD_RETRY_MS later.
 */
#define REBUILD_LOCK_TIMEOUT_MS 50
#define REBUILD_RETRY_MS 5000
/*
 * The longest wait of the vacuum for a lock other than its tables' own
 * (taken only when free).  Claims do not wait behind the vacuum's waits,
 * but the supervisor's round does; none that the engine's own work causes
 * lasts this long (a relation extension lock, a row of pg_class another
 * vacuum is overwriting).
 */
#define VACUUM_LOCK_TIMEOUT_MS 100

/*
 * True when rows have died since the last vacuum that it could not remove:
 * the removal horizon has moved.  While a session holds an old snapshot it
 * does not, and vacuuming again would scan the table and its indexes for
 * nothing.
 */
static bool
horizon_moved(Oid relid)
{
	Relation	rel = relation_open(relid, NoLock);
	TransactionId horizon = GetOldestNonRemovableTransactionId(rel);

	relation_close(rel, NoLock);
	if (TransactionIdIsValid(horizon_at_last) &&
		!TransactionIdFollows(horizon, horizon_at_last))
		return false;
	horizon_at_last = horizon;
	return true;
}

/*
 * Whether job_engine.`table` exists and no vacuum holds it now; its lock
 * taken and let go again.  Left to SKIP_LOCKED alone, a table being
 * vacuumed would make VACUUM log a warning.
 */
static bool
vacuum_lock_free(const char *table, Oid *relid)
{
	*relid = RangeVarGetRelid(makeRangeVar("job_engine", (char *) table, -1), NoLock, true);
	if (!OidIsValid(*relid) || !ConditionalLockRelationOid(*relid, ShareUpdateExclusiveLock))
		return false;
	UnlockRelationOid(*relid, ShareUpdateExclusiveLock);
	return true;
}

/*
 * Runs step(arg) and says whether it ran to its end: false when one of its
 * lock waits timed out, whose error is then dropped, and whose transaction
 * the caller must abort.  Any other error is thrown on.  `cxt` outlives
 * the transactions the step may end.
 */
static bool
ran_within_lock_timeout(void (*step) (void *), void *arg, MemoryContext cxt)
{
	volatile bool ran = false;

	PG_TRY();
	{
		step(arg);
		ran = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return ran;
}

/* ExecVacuum(stmt) as a top-level command, then the commit of the last transaction. */
static void
vacuum_step(void *stmt)
{
	ExecVacuum(make_parsestate(NULL), (VacuumStmt *) stmt, true);
	CommitTransactionCommand();
}

/*
 * ExecVacuum(stmt) in the transaction the caller began, with every lock
 * wait cut short after VACUUM_LOCK_TIMEOUT_MS.  The vacuum commits that
 * transaction and runs each table, then the update of pg_database, in a
 * transaction of its own.  A wait cut short rolls back the transaction it
 * was in, logged at DEBUG1: the tables vacuumed before keep what was done,
 * and so does the table it was in (a vacuum's changes to pages are not
 * undone); only its statistics are lost.  The caller's transaction is over
 * in every case.
 */
static void
vacuum_within_lock_timeout(VacuumStmt *stmt, MemoryContext cxt)
{
	static MemoryContext portal = NULL;
	MemoryContext saved_portal = PortalContext;
	int			saved_timeout = LockTimeout;
	volatile bool ran = false;

	/*
	 * The vacuum keeps what it needs across its transactions in a child of
	 * PortalContext, which a worker does not have: given one of ours, it is
	 * freed after an error too.
	 */
	if (portal == NULL)
		portal = AllocSetContextCreate(TopMemoryContext, "job_engine vacuum",
									   ALLOCSET_SMALL_SIZES);
	PortalContext = portal;

	/*
	 * Set under the GUC machinery: a setting made in one transaction would
	 * end with the vacuum's first commit, or outlive the vacuum.  A shorter
	 * lock_timeout given to the session stays.
	 */
	if (LockTimeout <= 0 || LockTimeout > VACUUM_LOCK_TIMEOUT_MS)
		LockTimeout = VACUUM_LOCK_TIMEOUT_MS;
	PG_TRY();
	{
		ran = ran_within_lock_timeout(vacuum_step, stmt, cxt);
	}
	PG_FINALLY();
	{
		LockTimeout = saved_timeout;
		PortalContext = saved_portal;
		MemoryContextReset(portal);
	}
	PG_END_TRY();
	if (!ran)
	{
		AbortCurrentTransaction();
		ereport(DEBUG1,
				(errmsg("job_engine: the vacuum of job_engine._jobs and _attempts was cut short: a lock it waited for is held")));
	}
}

/*
 * Runs VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED, TRUNCATE false, and from
 * PostgreSQL 16 SKIP_DATABASE_STATS) job_engine._jobs,
 * job_engine._attempts (the latter when no other vacuum holds it), as a
 * top-level command that never waits long for a lock.
 */
static VacuumResult
vacuum_jobs_table(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	VacuumStmt *stmt = makeNode(VacuumStmt);
	Oid			relid;
	Oid			attempts;

	stmt->options = list_make3(makeDefElem("index_cleanup", NULL, -1),
							   makeDefElem("skip_locked", NULL, -1),
							   makeDefElem("truncate", (Node *) makeString("false"), -1));
	stmt->options = je_vacuum_skip_database_stats(stmt->options);
	stmt->rels = list_make1(makeVacuumRelation(makeRangeVar("job_engine", "_jobs", -1),
											   InvalidOid, NIL));
	stmt->is_vacuumcmd = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!vacuum_lock_free("_jobs", &relid))
	{
		/* Being vacuumed already, or gone: the next round will do. */
		CommitTransactionCommand();
		return VACUUM_BUSY;
	}
	/* Its horizon as seen from the table, which must be locked for that. */
	if (!ConditionalLockRelationOid(relid, AccessShareLock))
	{
		CommitTransactionCommand();
		return VACUUM_BUSY;
	}
	if (!horizon_moved(relid))
	{
		CommitTransactionCommand();
		return VACUUM_HELD;
	}
	UnlockRelationOid(relid, AccessShareLock);
	if (vacuum_lock_free("_attempts", &attempts))
		stmt->rels = lappend(stmt->rels,
							 makeVacuumRelation(makeRangeVar("job_engine", "_attempts", -1),
												InvalidOid, NIL));
	pgstat_report_activity(STATE_RUNNING, "job_engine: vacuuming job_engine._jobs");
	/* Cut short or not, done: what it did is kept, and it is not retried at once. */
	vacuum_within_lock_timeout(stmt, cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return VACUUM_DONE;
}

/*
 * Appends the indexes of job_engine.`table` and their sizes to *sizes.
 * Only what can be locked at once is looked at: a user's transaction that
 * holds the table or an index (a TRUNCATE, a REINDEX) must not make the
 * supervisor wait, and, with the locks this transaction already holds,
 * join it in a deadlock.  An index left out has no size to compare with,
 * and is not rebuilt after a hold.
 */
static void
add_index_sizes(List **sizes, const char *table)
{
	Oid			relid = RangeVarGetRelid(makeRangeVar("job_engine", (char *) table, -1),
										 NoLock, true);
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;

	if (!OidIsValid(relid) || !ConditionalLockRelationOid(relid, AccessShareLock))
		return;
	rel = try_relation_open(relid, NoLock);
	if (rel == NULL)
		return;					/* dropped before the lock was ours */
	indexes = RelationGetIndexList(rel);
	relation_close(rel, NoLock);
	foreach(lc, indexes)
	{
		Relation	index;
		IndexSize  *size;
		MemoryContext old;

		if (!ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
			continue;
		index = try_relation_open(lfirst_oid(lc), NoLock);
		if (index == NULL)
			continue;
		/* The list outlives the transaction. */
		old = MemoryContextSwitchTo(TopMemoryContext);
		size = palloc(sizeof(IndexSize));
		size->index = lfirst_oid(lc);
		size->blocks = RelationGetNumberOfBlocks(index);
		*sizes = lappend(*sizes, size);
		MemoryContextSwitchTo(old);
		relation_close(index, AccessShareLock);
	}
}

/* The indexes of _jobs and _attempts with their current sizes. */
static List *
current_index_sizes(void)
{
	List	   *sizes = NIL;

	StartTransactionCommand();
	add_index_sizes(&sizes, "_jobs");
	add_index_sizes(&sizes, "_attempts");
	CommitTransactionCommand();
	return sizes;
}

/* The size of `index` in `sizes`, InvalidBlockNumber when it is not there. */
static BlockNumber
size_of(List *sizes, Oid index)
{
	ListCell   *lc;

	foreach(lc, sizes)
	{
		IndexSize  *size = lfirst(lc);

		if (size->index == index)
			return size->blocks;
	}
	return InvalidBlockNumber;
}

/* A relation and a lock mode to take on it. */
typedef struct RelationLock
{
	Oid			relid;
	LOCKMODE	lockmode;
} RelationLock;

static void
lock_step(void *arg)
{
	RelationLock *lock = arg;

	LockRelationOid(lock->relid, lock->lockmode);
}

/*
 * Takes `lockmode` on `relid`, waiting at most REBUILD_LOCK_TIMEOUT_MS,
 * which then holds for every lock wait of the transaction (the rebuild's
 * own, and those of the REINDEX).  False when it timed out: the
 * transaction must then be aborted.
 */
static bool
lock_within_timeout(Oid relid, LOCKMODE lockmode)
{
	RelationLock lock = {relid, lockmode};

	(void) set_config_option("lock_timeout", CppAsString2(REBUILD_LOCK_TIMEOUT_MS),
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	return ran_within_lock_timeout(lock_step, &lock, CurrentMemoryContext);
}

/*
 * Whether `table` (locked) holds more live rows than a rebuild may read
 * under its share lock (job_engine.rebuild_max_rows); if so, says which
 * index is left to the operator.  A rebuild holds that lock for as long as
 * it reads the heap, and claims and submits wait that long: with a long
 * retention that is a stall whose time the operator should choose.
 */
static bool
too_many_rows_to_rebuild(Oid table, const char *index_name)
{
	Relation	rel = relation_open(table, NoLock);
	float4		rows = rel->rd_rel->reltuples;

	relation_close(rel, NoLock);
	if (rows <= je_rebuild_max_rows && je_rebuild_max_rows > 0)
		return false;
	ereport(LOG,
			(errmsg("job_engine: index job_engine.%s grew while an old snapshot was held and is not rebuilt: its table holds %.0f rows",
					index_name, rows),
			 errhint("Run REINDEX INDEX CONCURRENTLY job_engine.%s to give the space back.",
					 quote_identifier(index_name))));
	return true;
}

static void
reindex_step(void *stmt)
{
	ExecReindex(make_parsestate(NULL), (ReindexStmt *) stmt, true);
}

/*
 * REINDEX INDEX `index`, in a transaction of its own, when the locks it
 * needs are free.  False when they were not, or the index is gone.
 */
static bool
rebuild_index(Oid index)
{
	MemoryContext cxt = CurrentMemoryContext;
	ReindexStmt *stmt = makeNode(ReindexStmt);
	Oid			table;
	char	   *name;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	table = IndexGetRelation(index, true);
	name = get_rel_name(index);
	/* The rows are looked at first: the rebuild's own lock may be busy. */
	if (!OidIsValid(table) || name == NULL ||
		!ConditionalLockRelationOid(table, AccessShareLock))
	{
		AbortCurrentTransaction();
		return false;
	}
	if (too_many_rows_to_rebuild(table, name))
	{
		AbortCurrentTransaction();
		return true;
	}
	if (!lock_within_timeout(table, ShareLock) ||
		!ConditionalLockRelationOid(index, AccessExclusiveLock))
	{
		AbortCurrentTransaction();
		return false;
	}
	stmt->kind = REINDEX_OBJECT_INDEX;
	stmt->relation = makeRangeVar("job_engine", name, -1);
	stmt->params = NIL;
	/*
	 * No parallel build: the table holds few live rows once the hold is
	 * over, and workers would cost more than they save.
	 */
	(void) set_config_option("max_parallel_maintenance_workers", "0",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	pgstat_report_activity(STATE_RUNNING, "job_engine: rebuilding an index of job_engine._jobs or _attempts");
	/* As for any utility command that reads tables, a snapshot. */
	PushActiveSnapshot(GetTransactionSnapshot());
	/*
	 * The build overwrites the table's pg_class row in place, which waits,
	 * as a vacuum's update does, for a transaction that updated the row (a
	 * GRANT on the table): a busy lock, tried again later.
	 */
	if (!ran_within_lock_timeout(reindex_step, stmt, cxt))
	{
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return true;
}

/*
 * Rebuilds the indexes grown to more than twice their size before the
 * horizon was held.  Returns whether all of them are done; those whose
 * locks were busy are tried again REBUILD_RETRY_MS later.
 */
static bool
rebuild_grown_indexes(void)
{
	List	   *now = current_index_sizes();
	ListCell   *lc;
	bool		done = true;

	foreach(lc, now)
	{
		IndexSize  *size = lfirst(lc);
		BlockNumber before = size_of(index_sizes, size->index);

		if (before == InvalidBlockNumber || size->blocks < REBUILD_MIN_BLOCKS ||
			size->blocks <= 2 * before)
			continue;
		if (!rebuild_index(size->index))
		{
			/* Busy: the others would be too. */
			ereport(DEBUG1,
					(errmsg("job_engine: the rebuild of the indexes of job_engine._jobs and _attempts found a lock busy, and is tried again in %d ms",
							REBUILD_RETRY_MS)));
			done = false;
			break;
		}
	}
	list_free_deep(now);
	return done;
}

/*
 * After a vacuum: the indexes' sizes to compare with after a hold, or,
 * after the first vacuum that follows one, the rebuild of those that grew.
 */
static void
after_vacuum(void)
{
	if (held_back)
	{
		held_back = false;
		rebuild_due = true;
	}
	if (rebuild_due)
		return;
	list_free_deep(index_sizes);
	index_sizes = NIL;
	index_sizes = current_index_sizes();
}

/*
 * Vacuums job_engine._jobs and _attempts when `slot`'s executors have
 * claimed job_engine.vacuum_after jobs since the last vacuum, and rebuilds
 * the indexes a held horizon made grow.  An error is logged and the
 * supervisor goes on: the vacuum is an optimisation.
 */
void
je_vacuum_jobs_if_due(SupervisorSlot *slot)
{
	static uint64 claimed_at_last = 0;
	uint64		claimed = pg_atomic_read_u64(&slot->jobs_claimed);
	MemoryContext cxt = CurrentMemoryContext;

	if (je_vacuum_after <= 0 ||
		(!rebuild_due && claimed - claimed_at_last < (uint64) je_vacuum_after))
		return;

	PG_TRY();
	{
		/*
		 * A rebuild is tried until done, not only when a vacuum is due:
		 * a busy lock is more likely free another time.
		 */
		if (rebuild_due &&
			TimestampDifferenceExceeds(rebuild_tried, GetCurrentTimestamp(), REBUILD_RETRY_MS))
		{
			rebuild_due = !rebuild_grown_indexes();
			rebuild_tried = GetCurrentTimestamp();
		}
		if (claimed - claimed_at_last >= (uint64) je_vacuum_after)
		{
			switch (vacuum_jobs_table())
			{
				case VACUUM_BUSY:
					break;
				case VACUUM_HELD:
					held_back = true;
					break;
				case VACUUM_DONE:
					claimed_at_last = claimed;
					after_vacuum();
					break;
			}
		}
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
		claimed_at_last = claimed;	/* no retry every round */
		rebuild_due = false;
	}
	PG_END_TRY();
}
