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
 *
 * A listed database that cannot be served (it does not exist, it does not
 * allow connections, it is invalid, or no worker slot is free) is waited for
 * as well: no supervisor is started only to fail, and the reason is logged
 * once, when it first applies, not at every round; a lack of worker slots
 * once a minute while it lasts.
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
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/pidfile.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "settings.h"
#include "shmem.h"
#include "wait_events.h"
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

/* Whether a listed database can be served, or why not. */
typedef enum DatabaseState
{
	DB_SERVABLE,
	DB_MISSING,					/* no database of that name */
	DB_OTHER_CASE,				/* none, but one whose name differs only in case */
	DB_NO_CONNECTIONS,			/* ALLOW_CONNECTIONS false */
	DB_INVALID,					/* left invalid by an interrupted DROP DATABASE */
	DB_NO_WORKER_SLOT			/* no background worker slot for its supervisor */
} DatabaseState;

/* Per listed database, the state last logged (DB_SERVABLE: none), and when. */
static DatabaseState *reported = NULL;
static TimestampTz *reported_at = NULL;

/*
 * Whether the database named `dbname` can be served.  A missing one whose
 * name differs only in case from an existing one is DB_OTHER_CASE, with that
 * name in `other_case` (NAMEDATALEN bytes).  Without a database of our own
 * we may only read shared catalogs, and only by heap scan (as the autovacuum
 * launcher does): index scans would need pg_class.
 */
static DatabaseState
database_state(const char *dbname, char *other_case)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	DatabaseState state = DB_MISSING;

	other_case[0] = '\0';
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), dbname) == 0)
		{
#ifdef DATCONNLIMIT_INVALID_DB
			if (db->datconnlimit == DATCONNLIMIT_INVALID_DB)
				state = DB_INVALID;
			else
#endif
			if (!db->datallowconn)
				state = DB_NO_CONNECTIONS;
			else
				state = DB_SERVABLE;
			break;
		}
		if (other_case[0] == '\0' && pg_strcasecmp(NameStr(db->datname), dbname) == 0)
			strlcpy(other_case, NameStr(db->datname), NAMEDATALEN);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	if (state == DB_MISSING && other_case[0] != '\0')
		state = DB_OTHER_CASE;
	return state;
}

/*
 * Logs why listed database `dbindex` is not served, once per reason: only
 * when its state differs from the one last logged.  DB_SERVABLE logs nothing
 * and makes the next reason worth saying again.
 */
static void
report_state(int dbindex, DatabaseState state, const char *other_case)
{
	const char *dbname = JobEngineShmem->supervisors[dbindex].dbname;

	/* A lack of slots is said again once a minute, as executors' is. */
	if (state == reported[dbindex] &&
		(state != DB_NO_WORKER_SLOT ||
		 !TimestampDifferenceExceeds(reported_at[dbindex], GetCurrentTimestamp(),
									 JE_SHORTAGE_WARNING_INTERVAL_MS)))
		return;
	reported[dbindex] = state;
	reported_at[dbindex] = GetCurrentTimestamp();
	switch (state)
	{
		case DB_SERVABLE:
			break;
		case DB_MISSING:
			ereport(LOG,
					(errmsg("job_engine: database \"%s\" does not exist", dbname),
					 errdetail("job_engine.databases lists it: it is served as soon as it is created.")));
			break;
		case DB_OTHER_CASE:
			ereport(WARNING,
					(errcode(ERRCODE_UNDEFINED_DATABASE),
					 errmsg("job_engine: database \"%s\" does not exist", dbname),
					 errdetail("Names in job_engine.databases are case-sensitive, and database \"%s\" differs only in case.",
							   other_case),
					 errhint("To serve \"%s\", write its name so in job_engine.databases and restart the server.",
							 other_case)));
			break;
		case DB_NO_CONNECTIONS:
			ereport(LOG,
					(errmsg("job_engine: database \"%s\" does not allow connections", dbname),
					 errdetail("Its jobs wait until it does."),
					 errhint("ALTER DATABASE %s ALLOW_CONNECTIONS true serves it.",
							 quote_identifier(dbname))));
			break;
		case DB_INVALID:
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("job_engine: database \"%s\" is invalid", dbname),
					 errdetail("An interrupted DROP DATABASE left it so, and PostgreSQL refuses connections to it."),
					 errhint("Use DROP DATABASE to drop invalid databases.")));
			break;
		case DB_NO_WORKER_SLOT:
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("job_engine: could not start supervisor for database \"%s\"", dbname),
					 errdetail("All max_worker_processes background worker slots are in use."),
					 errhint("Raise max_worker_processes: job_engine needs one launcher, plus one supervisor and job_engine.max_workers executors per database, on top of other extensions' workers and the logical replication launcher.")));
			break;
	}
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
		return NULL;
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

/*
 * Whether the server is being stopped: the postmaster says so in its
 * postmaster.pid (in the data directory, our working directory) before it
 * asks its children to stop.
 */
static bool
server_stopping(void)
{
	FILE	   *file = AllocateFile("postmaster.pid", "r");
	char		line[MAXPGPATH];
	int			lineno = 0;
	bool		stopping = false;

	if (file == NULL)
		return false;
	while (fgets(line, sizeof(line), file) != NULL)
	{
		if (++lineno == LOCK_FILE_LINE_PM_STATUS)
		{
			stopping = strncmp(line, PM_STATUS_STOPPING, strlen(PM_STATUS_STOPPING)) == 0;
			break;
		}
	}
	FreeFile(file);
	return stopping;
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
	reported = palloc0(sizeof(DatabaseState) * Max(ndb, 1));
	reported_at = palloc0(sizeof(TimestampTz) * Max(ndb, 1));

	for (;;)
	{
		/*
		 * Terminated while the server runs, it exits through FATAL with
		 * code 1, for the postmaster to start it again; at a stop of the
		 * server, quietly.
		 */
		if (ProcDiePending && !server_stopping())
			je_worker_interruptible(true);
		CHECK_FOR_INTERRUPTS();
		je_worker_exit_if_stopping();
		je_worker_process_reload();

		for (int i = 0; i < ndb; i++)
		{
			SupervisorSlot *sup = &JobEngineShmem->supervisors[i];
			bool		set_aside;
			DatabaseState state;
			char		other_case[NAMEDATALEN];

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
			state = database_state(sup->dbname, other_case);
			if (state == DB_SERVABLE)
			{
				last_start[i] = GetCurrentTimestamp();
				handles[i] = start_supervisor(i);
				if (handles[i] == NULL)
					state = DB_NO_WORKER_SLOT;
			}
			/* The supervisor's slot is shared out like executors' (supervisor.c). */
			LWLockAcquire(JobEngineShmem->lock, LW_EXCLUSIVE);
			sup->starved = state == DB_NO_WORKER_SLOT;
			LWLockRelease(JobEngineShmem->lock);
			report_state(i, state, other_case);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 LAUNCHER_NAP_MS, je_wait_event(JE_WAIT_LAUNCHER_MAIN));
		ResetLatch(MyLatch);
	}
}
