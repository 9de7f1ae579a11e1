/*
 * database_guard.c
 *	  Our workers step aside for the database commands that need a database
 *	  to themselves.
 *
 * Four commands fail with 55006 ("being accessed by other users") while any
 * other session is connected to the database they act on: DROP DATABASE,
 * CREATE DATABASE ... TEMPLATE (the template), ALTER DATABASE ... RENAME TO
 * and ALTER DATABASE ... SET TABLESPACE, the callers of
 * CountOtherDBBackends() in dbcommands.c.  A supervisor and its executors
 * are always connected to the databases they serve.  The library is
 * preloaded, so every backend has this ProcessUtility hook; it sees such a
 * command first and, for a database in job_engine.databases:
 *
 *	1. makes every check PostgreSQL makes before it would wait for other
 *	   sessions: not inside a transaction block or a function where the
 *	   command forbids it, the database exists, the caller owns it (for a
 *	   template: has CREATEDB, may become the new owner, and owns the
 *	   template or it is marked datistemplate), not the current database, no
 *	   subscription or active slot, the new name is free, the tablespace may
 *	   be used...  If one fails, the hook does nothing and PostgreSQL raises
 *	   its own error.  Nothing happens to the engine on behalf of a role that
 *	   may not run the command.
 *	2. sets the database aside (SupervisorSlot.set_aside, a count: two
 *	   CREATE DATABASE may copy one template at once), so the launcher does
 *	   not restart its supervisor;
 *	3. sends SIGTERM to the supervisor and the executors and waits up to
 *	   STEP_ASIDE_WAIT_MS for them to leave;
 *	4. runs the command.
 *
 * The mark belongs to the transaction that set it and is released when that
 * transaction ends, however it ends: committed (a dropped or renamed database
 * is then simply not found by the launcher), rolled back, cancelled during
 * the wait, failed later in PostgreSQL, prepared, or its backend exiting.  A
 * subtransaction rolled back releases the marks it set.  Releasing wakes the
 * launcher, so the workers come back at once.  Checks that only a caller
 * entitled to the command can fail afterwards (an encoding, a locale,
 * another user's session still connected) cost a short absence.
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

#include "compat.h"
#include "database_guard.h"
#include "shmem.h"
#include "wait_events.h"

#define STEP_ASIDE_WAIT_MS 10000
#define STEP_ASIDE_POLL_MS 50

/*
 * A database set aside by this backend, the subtransaction that did it and,
 * for a rename, the database renamed (warned about when the transaction
 * commits).
 */
typedef struct HeldMark
{
	int			dbindex;
	SubTransactionId subid;
	Oid			renamed;
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

/* A tablespace the caller may make a database's default, as dbcommands.c checks. */
static bool
usable_tablespace(DefElem *opt, Oid *spcoid)
{
	*spcoid = get_tablespace_oid(defGetString(opt), true);
	return OidIsValid(*spcoid) &&
		je_tablespace_aclcheck(*spcoid) == ACLCHECK_OK &&
		*spcoid != GLOBALTABLESPACE_OID;
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

/* The checks of createdb() before it waits for sessions on the template. */
static int
createdb_target(CreatedbStmt *stmt, bool isTopLevel)
{
	DefElem    *template = NULL;
	DefElem    *owner = NULL;
	DefElem    *tablespace = NULL;
	const char *template_name = "template1";
	int			dbindex;
	DatabaseRow src;
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst(lc);
		DefElem   **slot = NULL;

		if (strcmp(opt->defname, "template") == 0)
			slot = &template;
		else if (strcmp(opt->defname, "owner") == 0)
			slot = &owner;
		else if (strcmp(opt->defname, "tablespace") == 0)
			slot = &tablespace;
		if (slot == NULL)
			continue;
		if (*slot != NULL)
			return -1;			/* conflicting options: PostgreSQL refuses */
		*slot = opt;
	}
	if (template && template->arg)
		template_name = defGetString(template);
	dbindex = find_supervisor(template_name);
	if (dbindex < 0)
		return -1;
	PreventInTransactionBlock(isTopLevel, "CREATE DATABASE");
	if (!have_createdb_privilege())
		return -1;
	if (owner && owner->arg)
	{
		Oid			roleid = get_role_oid(defGetString(owner), true);

		if (!OidIsValid(roleid) || !je_may_become(roleid))
			return -1;
	}
	if (!lookup_database(template_name, &src) ||
		src.invalid ||
		(!src.istemplate && !je_database_ownercheck(src.oid)))
		return -1;
	if (tablespace && tablespace->arg)
	{
		Oid			spcoid;

		if (!usable_tablespace(tablespace, &spcoid))
			return -1;
	}
	if (OidIsValid(get_database_oid(stmt->dbname, true)))
		return -1;
	return dbindex;
}

/*
 * The checks of RenameDatabase() before it waits for other sessions.  A
 * rename may run inside a transaction block; the workers stay aside until
 * the transaction ends (they could not connect before anyway: the rename
 * holds the database's lock).
 */
static int
renamedb_target(RenameStmt *stmt)
{
	int			dbindex;
	DatabaseRow db;

	if (stmt->renameType != OBJECT_DATABASE)
		return -1;
	dbindex = find_supervisor(stmt->subname);
	if (dbindex < 0 ||
		!lookup_database(stmt->subname, &db) ||
		!je_database_ownercheck(db.oid) ||
		!have_createdb_privilege() ||
		OidIsValid(get_database_oid(stmt->newname, true)) ||
		db.oid == MyDatabaseId)
		return -1;
	return dbindex;
}

/* The checks of AlterDatabase() and movedb() before they wait (SET TABLESPACE). */
static int
movedb_target(AlterDatabaseStmt *stmt, bool isTopLevel)
{
	DefElem    *tablespace;
	int			dbindex;
	DatabaseRow db;
	Oid			spcoid;

	/* SET TABLESPACE is the only option of its statement. */
	if (list_length(stmt->options) != 1)
		return -1;
	tablespace = linitial(stmt->options);
	if (strcmp(tablespace->defname, "tablespace") != 0)
		return -1;
	dbindex = find_supervisor(stmt->dbname);
	if (dbindex < 0)
		return -1;
	PreventInTransactionBlock(isTopLevel, "ALTER DATABASE SET TABLESPACE");
	if (!lookup_database(stmt->dbname, &db) ||
		!je_database_ownercheck(db.oid) ||
		db.oid == MyDatabaseId ||
		!usable_tablespace(tablespace, &spcoid) ||
		spcoid == db.tablespace)	/* a no-op for PostgreSQL */
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
		case T_CreatedbStmt:
			return createdb_target((CreatedbStmt *) stmt, isTopLevel);
		case T_RenameStmt:
			return renamedb_target((RenameStmt *) stmt);
		case T_AlterDatabaseStmt:
			return movedb_target((AlterDatabaseStmt *) stmt, isTopLevel);
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

/*
 * The engine serves databases by name (job_engine.databases): a renamed
 * database is no longer served, and its jobs wait until it is renamed back.
 * Said when the transaction is about to commit, with the name the database
 * then has: a rename rolled back, or renamed back in the same transaction,
 * says nothing.
 */
static void
warn_renamed(HeldMark *mark)
{
	const char *served = JobEngineShmem->supervisors[mark->dbindex].dbname;
	char	   *now_named;

	if (OidIsValid(get_database_oid(served, true)))
		return;
	now_named = get_database_name(mark->renamed);
	if (now_named == NULL)
		return;
	ereport(WARNING,
			(errmsg("job_engine does not serve database \"%s\"", now_named),
			 errdetail("job_engine.databases names \"%s\": the jobs of the renamed database wait until it has that name again.",
					   served),
			 errhint("Rename the database back, or name \"%s\" in job_engine.databases and restart the server.",
					 now_named)));
}

static void
guard_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			foreach(lc, held_marks)
			{
				HeldMark   *mark = lfirst(lc);

				if (OidIsValid(mark->renamed))
					warn_renamed(mark);
			}
			break;
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
	mark->renamed = InvalidOid;
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
						 STEP_ASIDE_POLL_MS, je_wait_event(JE_WAIT_STEP_ASIDE));
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
	Oid			renamed = InvalidOid;

	if (JobEngineShmem != NULL)
		dbindex = target_of(stmt, context == PROCESS_UTILITY_TOPLEVEL);
	if (dbindex >= 0)
	{
		step_aside(dbindex);
		if (IsA(stmt, RenameStmt))
			renamed = get_database_oid(((RenameStmt *) stmt)->subname, true);
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	/*
	 * The rename's mark is still held (its end of transaction is to come),
	 * but look it up rather than trust `mark`: a command that commits
	 * internally (SET TABLESPACE) has released and freed its own.
	 */
	if (OidIsValid(renamed) && held_marks != NIL)
		((HeldMark *) llast(held_marks))->renamed = renamed;
}

void
je_database_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = je_process_utility;
}
