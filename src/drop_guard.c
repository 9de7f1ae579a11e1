/*
 * drop_guard.c
 *	  DROP EXTENSION job_engine refuses while jobs are unfinished.
 *
 * Dropping the extension drops its tables: unfinished jobs vanish with the
 * whole history, and job ids start over.  PostgreSQL's DROP refuses to take
 * dependent objects along unless told CASCADE; unfinished jobs are treated
 * as such dependents: a plain DROP EXTENSION job_engine (RESTRICT) fails
 * with 2BP01 while any exists, and CASCADE drops them.  The preloaded
 * library's ProcessUtility hook sees the command first.  It acts only once
 * PostgreSQL's own checks would pass (the extension exists and the caller
 * owns it), so that the count of jobs is never told to a role that may not
 * drop the extension.
 *
 * Schedules (src/sql/84_schedules.sql) go with what they run in: DROP
 * EXTENSION job_engine removes this database's schedules from cron.job when
 * pg_cron is installed here, and DROP DATABASE, run from pg_cron's database,
 * removes the dropped database's.  pg_cron would otherwise go on running
 * their commands, each run failing.  Both happen in the command's
 * transaction, after the checks PostgreSQL makes on the caller's right to
 * it, so a command that fails keeps them.  Schedules in pg_cron's database
 * for another database are kept when job_engine is dropped here: they run
 * there and still work.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "compat.h"
#include "drop_guard.h"
#include "internal_sql.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The jobs of this database that are waiting or running. */
static int64
unfinished_jobs(void)
{
	int			level;
	bool		isnull;
	int64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = je_push_internal_settings(false);
	if (SPI_execute("SELECT pg_catalog.count(*) FROM job_engine._jobs j"
					" WHERE j.state OPERATOR(pg_catalog.=)"
					" ANY ('{created,running,retrying}'::job_engine.job_state[])",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count the unfinished jobs");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	je_pop_internal_settings(level);
	SPI_finish();
	return n;
}

/* Whether `stmt` is a DROP EXTENSION, RESTRICT or CASCADE, that names job_engine. */
static bool
names_job_engine(Node *stmt)
{
	DropStmt   *drop;
	ListCell   *lc;

	if (!IsA(stmt, DropStmt) || ((DropStmt *) stmt)->removeType != OBJECT_EXTENSION)
		return false;
	drop = (DropStmt *) stmt;
	foreach(lc, drop->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "job_engine") == 0)
			return true;
	}
	return false;
}

/* Whether `stmt` is a DROP EXTENSION (RESTRICT) that names job_engine. */
static bool
drops_job_engine(Node *stmt)
{
	return names_job_engine(stmt) && ((DropStmt *) stmt)->behavior == DROP_RESTRICT;
}

/*
 * Removes the schedules of database `datname` from this database's
 * cron.job, through job_engine_internal._unschedule_database(), as the bootstrap
 * superuser (pg_cron lets only a superuser remove another role's job).
 * Nothing when this database's job_engine lacks the function (a version
 * before it) or pg_cron is not installed here.
 */
static void
unschedule_database(const char *datname)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	Oid			save_userid;
	int			save_sec_context;
	int			level;

	values[0] = CStringGetTextDatum(datname);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = je_push_internal_settings(false);
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_proc p"
					" WHERE p.oid OPERATOR(pg_catalog.=)"
					" pg_catalog.to_regprocedure('_unschedule_database(text)')",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for job_engine_internal._unschedule_database");
	if (SPI_processed == 1 &&
		SPI_execute_with_args("SELECT _unschedule_database($1)", 1, argtypes,
							  values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not remove the schedules of database \"%s\"", datname);
	je_pop_internal_settings(level);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* The schedules that DROP EXTENSION job_engine or DROP DATABASE leave with nothing to run. */
static void
drop_schedules(Node *stmt)
{
	if (names_job_engine(stmt))
	{
		Oid			ext = get_extension_oid("job_engine", true);

		if (OidIsValid(ext) && je_extension_ownercheck(ext))
			unschedule_database(get_database_name(MyDatabaseId));
	}
	else if (IsA(stmt, DropdbStmt))
	{
		const char *datname = ((DropdbStmt *) stmt)->dbname;
		Oid			db = get_database_oid(datname, true);

		if (OidIsValid(db) && db != MyDatabaseId && je_database_ownercheck(db) &&
			OidIsValid(get_extension_oid("job_engine", true)))
			unschedule_database(datname);
	}
}

static void
check_drop(Node *stmt)
{
	Oid			ext;
	int64		n;

	if (!drops_job_engine(stmt))
		return;
	ext = get_extension_oid("job_engine", true);
	if (!OidIsValid(ext) || !je_extension_ownercheck(ext))
		return;					/* PostgreSQL raises its own error */
	n = unfinished_jobs();
	if (n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension job_engine because " INT64_FORMAT " unfinished job(s) depend on it", n),
				 errdetail("Dropping it deletes them with every job's, attempt's and event's record, and job ids start over."),
				 errhint("Wait for them to finish or abort them with job_engine.abort(), or use DROP EXTENSION job_engine CASCADE to discard them.")));
}

static void
drop_guard_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						   ProcessUtilityContext context, ParamListInfo params,
						   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	check_drop(pstmt->utilityStmt);
	drop_schedules(pstmt->utilityStmt);
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
je_drop_guard_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = drop_guard_process_utility;
}
