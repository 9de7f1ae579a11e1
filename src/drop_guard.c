/*
 * drop_guard.c
 *	  Keeps our workers from blocking DROP DATABASE.
 *
 * DROP DATABASE fails while other sessions are connected, and a supervisor
 * and its executors are always connected to the databases they serve.  A
 * ProcessUtility hook (present in every backend, since the library is
 * preloaded) sees the DROP first: it marks the database's supervisor slot
 * as dropping, so the launcher does not restart it, terminates the
 * supervisor (which takes its executors along) and waits briefly for them
 * to leave before letting the DROP proceed.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "tcop/utility.h"

#include "shmem.h"
#include "wakeup.h"

#define DROP_WAIT_MS 10000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static int
find_supervisor(const char *dbname)
{
	for (int i = 0; i < JobEngineShmem->ndatabases; i++)
		if (strcmp(JobEngineShmem->supervisors[i].dbname, dbname) == 0)
			return i;
	return -1;
}

/* True while any of our processes is still attached to database `dboid`. */
static bool
workers_attached(int dbindex)
{
	SupervisorSlot *sup = &JobEngineShmem->supervisors[dbindex];
	int			per = JobEngineShmem->workers_per_db;
	bool		any = sup->pid != 0 && kill(sup->pid, 0) == 0;

	for (int i = 0; i < per && !any; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[dbindex * per + i];

		any = slot->pid != 0 && kill(slot->pid, 0) == 0;
	}
	return any;
}

static void
stop_workers_of(int dbindex)
{
	SupervisorSlot *sup = &JobEngineShmem->supervisors[dbindex];
	int			per = JobEngineShmem->workers_per_db;

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	sup->dropping = true;
	if (sup->pid != 0)
		kill(sup->pid, SIGTERM);
	for (int i = 0; i < per; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[dbindex * per + i];

		if (slot->pid != 0)
			kill(slot->pid, SIGTERM);
	}
	LWLockRelease(JobEngineShmem->lock);

	for (int waited = 0; waited < DROP_WAIT_MS; waited += 50)
	{
		bool		attached;

		LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
		attached = workers_attached(dbindex);
		LWLockRelease(JobEngineShmem->lock);
		if (!attached)
			break;
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
clear_dropping(int dbindex)
{
	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	JobEngineShmem->supervisors[dbindex].dropping = false;
	LWLockRelease(JobEngineShmem->lock);
}

static void
je_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	int			dbindex = -1;

	if (JobEngineShmem != NULL && IsA(pstmt->utilityStmt, DropdbStmt))
	{
		dbindex = find_supervisor(((DropdbStmt *) pstmt->utilityStmt)->dbname);
		if (dbindex >= 0)
			stop_workers_of(dbindex);
	}

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		/* Dropped: the launcher finds no database.  Failed: serve it again. */
		if (dbindex >= 0)
			clear_dropping(dbindex);
	}
	PG_END_TRY();
}

void
je_drop_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = je_process_utility;
}
