/*
 * database_guard.c
 *	  Our workers step aside for DROP DATABASE.
 *
 * DROP DATABASE fails with 55006 ("being accessed by other users") while
 * any other session is connected to the database, and a supervisor and its
 * executors are always connected to the databases they serve.  The library
 * is preloaded, so every backend has this ProcessUtility hook; it sees the
 * DROP first and, for a database in job_engine.databases:
 *
 *	1. makes every check dropdb() makes before it would wait for other
 *	   sessions: not inside a transaction block or a function, the database
 *	   exists, the caller owns it, it is not a template nor the current
 *	   database, no subscription or active slot uses it.  If one fails, the
 *	   hook does nothing and PostgreSQL raises its own error.  Nothing
 *	   happens to the engine on behalf of a role that may not drop it.
 *	2. sets the database aside (SupervisorSlot.set_aside, a count), so the
 *	   launcher does not restart its supervisor;
 *	3. sends SIGTERM to the supervisor and the executors and waits up to
 *	   STEP_ASIDE_WAIT_MS for them to leave;
 *	4. runs the DROP.
 *
 * The mark belongs to the transaction that set it and is released when that
 * transaction ends, however it ends: committed (a dropped database is then
 * simply not found by the launcher), rolled back, cancelled during the wait,
 * failed later in PostgreSQL, or its backend exiting.  Releasing wakes the
 * launcher, so the workers come back at once.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_tablespace_d.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "database_guard.h"
#include "shmem.h"

#define STEP_ASIDE_WAIT_MS 10000
#define STEP_ASIDE_POLL_MS 50

/* PostgreSQL 16 folded the per-object owner and ACL checks into one each. */
#if PG_VERSION_NUM >= 160000
#define je_database_ownercheck(db) \
	object_ownercheck(DatabaseRelationId, (db), GetUserId())
#define je_tablespace_aclcheck(spc) \
	object_aclcheck(TableSpaceRelationId, (spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) member_can_set_role(GetUserId(), (role))
#else
#define je_database_ownercheck(db) pg_database_ownercheck((db), GetUserId())
#define je_tablespace_aclcheck(spc) pg_tablespace_aclcheck((spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) is_member_of_role(GetUserId(), (role))
#endif

/* A database set aside by this backend, and the subtransaction that did it. */
typedef struct HeldMark
{
	int			dbindex;
	SubTransactionId subid;
} HeldMark;

typedef struct DatabaseRow
{
	Oid			oid;
	bool		istemplate;
	bool		invalid;		/* an interrupted DROP DATABASE left it */
	Oid			tablespace;
} DatabaseRow;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static List *held_marks = NIL;	/* of HeldMark, in TopMemoryContext */
static bool callbacks_registered = false;

static int
find_supervisor(const char *dbname)
{
	for (int i = 0; i < JobEngineShmem->ndatabases; i++)
		if (strcmp(JobEngineShmem->supervisors[i].dbname, dbname) == 0)
			return i;
	return -1;
}

static bool
lookup_database(const char *dbname, DatabaseRow *row)
{
	HeapTuple	tup;
	Form_pg_database form;

	row->oid = get_database_oid(dbname, true);
	if (!OidIsValid(row->oid))
		return false;
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(row->oid));
	if (!HeapTupleIsValid(tup))
		return false;
	form = (Form_pg_database) GETSTRUCT(tup);
	row->istemplate = form->datistemplate;
#ifdef DATCONNLIMIT_INVALID_DB
	row->invalid = form->datconnlimit == DATCONNLIMIT_INVALID_DB;
#else
	row->invalid = false;
#endif
	row->tablespace = form->dattablespace;
	ReleaseSysCache(tup);
	return true;
}

/*
 * The checks of dropdb() before it waits for other sessions.  The
 * transaction-block check is PostgreSQL's own function: it raises the very
 * error standard_ProcessUtility would raise a moment later.
 */
static int
dropdb_target(DropdbStmt *stmt, bool isTopLevel)
{
	int			dbindex = find_supervisor(stmt->dbname);
	DatabaseRow db;
	ListCell   *lc;
	int			nslots;
	int			nslots_active;

	if (dbindex < 0)
		return -1;
	foreach(lc, stmt->options)
	{
		if (strcmp(((DefElem *) lfirst(lc))->defname, "force") != 0)
			return -1;
	}
	PreventInTransactionBlock(isTopLevel, "DROP DATABASE");
	if (!lookup_database(stmt->dbname, &db) ||
		!je_database_ownercheck(db.oid) ||
		db.istemplate ||
		db.oid == MyDatabaseId)
		return -1;
	(void) ReplicationSlotsCountDBSlots(db.oid, &nslots, &nslots_active);
	if (nslots_active > 0 || CountDBSubscriptions(db.oid) > 0)
		return -1;
	return dbindex;
}

/* The served database the statement needs to itself, once allowed; or -1. */
static int
target_of(Node *stmt, bool isTopLevel)
{
	switch (nodeTag(stmt))
	{
		case T_DropdbStmt:
			return dropdb_target((DropdbStmt *) stmt, isTopLevel);
		default:
			return -1;
	}
}

/*
 * Releases the marks this backend holds: all of them (end of transaction,
 * exit) or those set in subtransaction `subid` (rolled back).  The launcher
 * is woken so that the workers come back now, not at its next round.
 */
static void
release_marks(bool all, SubTransactionId subid)
{
	ListCell   *lc;
	bool		released = false;
	Latch	   *launcher = NULL;

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	foreach(lc, held_marks)
	{
		HeldMark   *mark = lfirst(lc);
		SupervisorSlot *sup = &JobEngineShmem->supervisors[mark->dbindex];

		if (!all && mark->subid != subid)
			continue;
		if (sup->set_aside > 0)
			sup->set_aside--;
		held_marks = foreach_delete_current(held_marks, lc);
		pfree(mark);
		released = true;
	}
	if (released)
		launcher = JobEngineShmem->launcher_latch;
	LWLockRelease(JobEngineShmem->lock);
	if (launcher != NULL)
		SetLatch(launcher);
}

static void
guard_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (held_marks != NIL)
				release_marks(true, InvalidSubTransactionId);
			break;
		default:
			break;
	}
}

static void
guard_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (held_marks == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		release_marks(false, mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* Committed into the parent: rolled back with it from now on. */
		foreach(lc, held_marks)
		{
			HeldMark   *mark = lfirst(lc);

			if (mark->subid == mySubid)
				mark->subid = parentSubid;
		}
	}
}

/*
 * On exit, however the backend leaves (FATAL included): the transaction
 * callbacks run from AbortOutOfAnyTransaction() too, this is the backstop.
 */
static void
guard_exit(int code, Datum arg)
{
	if (held_marks != NIL)
		release_marks(true, InvalidSubTransactionId);
}

/* SIGTERM to the database's supervisor and executors; true while any is alive. */
static bool
signal_workers(int dbindex)
{
	SupervisorSlot *sup = &JobEngineShmem->supervisors[dbindex];
	int			per = JobEngineShmem->workers_per_db;
	bool		any = false;

	if (sup->pid != 0 && kill(sup->pid, SIGTERM) == 0)
		any = true;
	for (int i = 0; i < per; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[dbindex * per + i];

		if (slot->pid != 0 && kill(slot->pid, SIGTERM) == 0)
			any = true;
	}
	return any;
}

/*
 * Sets the database aside for the rest of this (sub)transaction and waits
 * for its workers to leave.  The mark is recorded before anything is
 * signalled, so that an error or a cancel during the wait releases it.
 * Signals are sent again on every round: a supervisor that was starting
 * when the mark was set exits by itself (supervisor_attach), but its pid
 * may show up in the slot meanwhile.
 */
static void
step_aside(int dbindex)
{
	MemoryContext old;
	HeldMark   *mark;

	if (!callbacks_registered)
	{
		RegisterXactCallback(guard_xact_callback, NULL);
		RegisterSubXactCallback(guard_subxact_callback, NULL);
		before_shmem_exit(guard_exit, (Datum) 0);
		callbacks_registered = true;
	}

	old = MemoryContextSwitchTo(TopMemoryContext);
	mark = palloc(sizeof(HeldMark));
	mark->dbindex = dbindex;
	mark->subid = GetCurrentSubTransactionId();
	held_marks = lappend(held_marks, mark);
	MemoryContextSwitchTo(old);

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	JobEngineShmem->supervisors[dbindex].set_aside++;
	LWLockRelease(JobEngineShmem->lock);

	for (TimestampTz since = GetCurrentTimestamp();;)
	{
		bool		alive;

		LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
		alive = signal_workers(dbindex);
		LWLockRelease(JobEngineShmem->lock);
		if (!alive ||
			TimestampDifferenceExceeds(since, GetCurrentTimestamp(), STEP_ASIDE_WAIT_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 STEP_ASIDE_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
je_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	int			dbindex = -1;

	if (JobEngineShmem != NULL)
		dbindex = target_of(stmt, context == PROCESS_UTILITY_TOPLEVEL);
	if (dbindex >= 0)
		step_aside(dbindex);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
je_database_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = je_process_utility;
}
