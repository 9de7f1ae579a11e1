/*
 * vacuum.c
 *	  The supervisor's vacuum of job_engine._jobs.
 *
 * Every claim moves jobs out of jobs_claim_idx's predicate, leaving dead
 * entries exactly where the next claim starts its index scan, in queue
 * order.  Until a vacuum removes them, each claim steps over all of them:
 * at 2,000 jobs/s that is hundreds of index pages per claim within a
 * minute, and autovacuum visits a database at most once per
 * autovacuum_naptime.  So the supervisor vacuums the table itself once its
 * executors have claimed job_engine.vacuum_after jobs since the last time.
 *
 * INDEX_CLEANUP ON, because the index entries are the point: with few dead
 * heap pages VACUUM would otherwise skip the indexes.  SKIP_LOCKED, and a
 * conditional lock first, so that the supervisor never waits behind (or
 * cancels) an autovacuum or a user's VACUUM of the table.  Skipped while
 * the removal horizon has not moved since the last one (an old snapshot is
 * held somewhere): it could remove nothing more.  TRUNCATE off:
 * giving empty tail pages back takes an exclusive lock that would stall
 * every claim, and a queue's table grows back anyway.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "settings.h"
#include "vacuum.h"

/* The removal horizon at the last vacuum: nothing older could be removed. */
static TransactionId horizon_at_last = InvalidTransactionId;

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
 * Runs VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED, TRUNCATE false) job_engine._jobs, as a
 * top-level command.  False when the table was busy (or gone), or when it
 * could remove nothing more than last time.
 */
static bool
vacuum_jobs_table(void)
{
	VacuumStmt *stmt = makeNode(VacuumStmt);
	Oid			relid;

	stmt->options = list_make3(makeDefElem("index_cleanup", NULL, -1),
							   makeDefElem("skip_locked", NULL, -1),
							   makeDefElem("truncate", (Node *) makeString("false"), -1));
	stmt->rels = list_make1(makeVacuumRelation(makeRangeVar("job_engine", "_jobs", -1),
											   InvalidOid, NIL));
	stmt->is_vacuumcmd = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	relid = RangeVarGetRelid(makeRangeVar("job_engine", "_jobs", -1), NoLock, true);
	if (!OidIsValid(relid) || !ConditionalLockRelationOid(relid, ShareUpdateExclusiveLock))
	{
		/* Being vacuumed already, or gone: the next round will do. */
		CommitTransactionCommand();
		return false;
	}
	if (!horizon_moved(relid))
	{
		UnlockRelationOid(relid, ShareUpdateExclusiveLock);
		CommitTransactionCommand();
		return false;
	}
	UnlockRelationOid(relid, ShareUpdateExclusiveLock);
	pgstat_report_activity(STATE_RUNNING, "job_engine: vacuuming job_engine._jobs");
	ExecVacuum(make_parsestate(NULL), stmt, true);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return true;
}

/*
 * Vacuums job_engine._jobs when `slot`'s executors have claimed
 * job_engine.vacuum_after jobs since the last vacuum.  An error is logged
 * and the supervisor goes on: the vacuum is an optimisation.
 */
void
je_vacuum_jobs_if_due(SupervisorSlot *slot)
{
	static uint64 claimed_at_last = 0;
	uint64		claimed = pg_atomic_read_u64(&slot->jobs_claimed);
	MemoryContext cxt = CurrentMemoryContext;

	if (je_vacuum_after <= 0 || claimed - claimed_at_last < (uint64) je_vacuum_after)
		return;

	PG_TRY();
	{
		if (vacuum_jobs_table())
			claimed_at_last = claimed;
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
	}
	PG_END_TRY();
}
