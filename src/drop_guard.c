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
 */
#include "postgres.h"

#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "compat.h"
#include "drop_guard.h"
#include "internal_sql.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Whether `stmt` is a DROP EXTENSION (RESTRICT) that names job_engine. */
static bool
drops_job_engine(Node *stmt)
{
	DropStmt   *drop;
	ListCell   *lc;

	if (!IsA(stmt, DropStmt))
		return false;
	drop = (DropStmt *) stmt;
	if (drop->removeType != OBJECT_EXTENSION || drop->behavior != DROP_RESTRICT)
		return false;
	foreach(lc, drop->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "job_engine") == 0)
			return true;
	}
	return false;
}

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
