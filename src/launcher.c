/*
 * launcher.c
 *	  The cluster-wide launcher: keeps one supervisor running per database
 *	  named in job_engine.databases.
 *
 * The launcher connects to no database (it only reads the shared catalog
 * pg_database) so that a database that does not exist yet, or is being
 * dropped, is simply waited for.  A supervisor that exits is started again
 * after a short delay; supervisors refuse to run twice for one database, so
 * a restarted launcher does not create duplicates.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "utils/snapmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

#define SUPERVISOR_RESTART_DELAY_MS 1000
#define LAUNCHER_NAP_MS 1000

void
je_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "job_engine", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "job_engine_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "job_engine launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "job_engine launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * Whether a database of that name exists.  Without a database of our own we
 * may only read shared catalogs, and only by heap scan (as the autovacuum
 * launcher does): index scans would need pg_class.
 */
static bool
database_exists(const char *dbname)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		exists = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!exists && HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		exists = strcmp(NameStr(db->datname), dbname) == 0;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return exists;
}

static BackgroundWorkerHandle *
start_supervisor(int dbindex)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "job_engine", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "job_engine_supervisor_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "job_engine supervisor for %s",
			 JobEngineShmem->supervisors[dbindex].dbname);
	strlcpy(worker.bgw_type, "job_engine supervisor", BGW_MAXLEN);
	worker.bgw_main_arg = Int32GetDatum(dbindex);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("job_engine: could not start supervisor for database \"%s\"",
						JobEngineShmem->supervisors[dbindex].dbname),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

/* A supervisor is running if our handle says so or its slot has a live pid. */
static bool
supervisor_running(int dbindex, BackgroundWorkerHandle **handle)
{
	pid_t		pid;

	if (*handle != NULL)
	{
		if (GetBackgroundWorkerPid(*handle, &pid) != BGWH_STOPPED)
			return true;
		pfree(*handle);
		*handle = NULL;
	}
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	pid = JobEngineShmem->supervisors[dbindex].pid;
	LWLockRelease(JobEngineShmem->lock);
	return pid != 0 && kill(pid, 0) == 0;
}

void
job_engine_launcher_main(Datum arg)
{
	int			ndb;
	BackgroundWorkerHandle **handles;
	TimestampTz *last_start;

	je_worker_handle_signals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	SetConfigOption("application_name", "job_engine launcher", PGC_USERSET, PGC_S_SESSION);

	LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
	JobEngineShmem->launcher_pid = MyProcPid;
	JobEngineShmem->launcher_latch = MyLatch;
	LWLockRelease(JobEngineShmem->lock);

	ndb = JobEngineShmem->ndatabases;
	handles = palloc0(sizeof(BackgroundWorkerHandle *) * Max(ndb, 1));
	last_start = palloc0(sizeof(TimestampTz) * Max(ndb, 1));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		je_worker_process_reload();

		for (int i = 0; i < ndb; i++)
		{
			SupervisorSlot *sup = &JobEngineShmem->supervisors[i];
			bool		set_aside;

			if (supervisor_running(i, &handles[i]))
				continue;
			/* A command needs the database to itself (database_guard.c). */
			LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
			set_aside = sup->set_aside > 0;
			LWLockRelease(JobEngineShmem->lock);
			if (set_aside ||
				!TimestampDifferenceExceeds(last_start[i], GetCurrentTimestamp(),
											SUPERVISOR_RESTART_DELAY_MS))
				continue;
			if (!database_exists(sup->dbname))
				continue;		/* waited for quietly */
			last_start[i] = GetCurrentTimestamp();
			handles[i] = start_supervisor(i);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAP_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
