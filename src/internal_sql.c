/*
 * internal_sql.c
 *	  Running the extension's own statements from C.
 *
 * The one way C runs the extension's statements (the workers' bookkeeping,
 * the claim, the outcomes, the gate's calls): directly through SPI, not
 * through SQL functions that would pin search_path with a SET clause.  They
 * pin it themselves: statements are prepared (je_keep_plan) and executed
 * (je_execute_plan) with search_path = pg_catalog, job_engine_internal,
 * job_engine, pg_temp, so that an operator or function planted in a schema
 * of the session's search_path can never be picked up (the same rule as for
 * the install script): both schemas belong to the extension and only a
 * superuser may create in them, and functions are never looked up in
 * pg_temp unless named with it.  Internal functions are called by their
 * bare names (tables are always qualified): job_engine_internal holds them
 * from 1.1 on, job_engine at release 1.0, which this library also serves,
 * and a plan kept from before ALTER EXTENSION UPDATE moved them is remade
 * under this path and finds them in their new schema.
 * Preparing and executing under the same search_path also keeps the plan
 * cache from analysing the statement again at every execution.  The claim
 * and the successes run several statements under one
 * je_push_internal_settings(true) instead, with the claim's planner
 * settings.  Handlers run outside these settings, with the session's own.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "parser/parser.h"
#include "storage/proc.h"
#include "utils/guc.h"

#include "compat.h"
#include "internal_sql.h"

/* The search_path of the extension's own statements (see the top). */
#define INTERNAL_SEARCH_PATH "pg_catalog, job_engine_internal, job_engine, pg_temp"

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	int			level = je_push_internal_settings(false);
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	je_pop_internal_settings(level);
	if (plan == NULL)
		elog(ERROR, "job_engine: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* Prepares `sql` and keeps the plan for the life of the process. */
SPIPlanPtr
je_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(sql, nargs, argtypes, 0);
}

/* Likewise, with one generic plan: planning per call costs more than running. */
SPIPlanPtr
je_keep_generic_plan(const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * Executes a kept plan as SPI_execute_plan() does, with search_path pinned
 * for the execution.
 */
int
je_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count)
{
	int			level = je_push_internal_settings(false);
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	je_pop_internal_settings(level);
	return rc;
}

static void
set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Enters the settings internal statements are prepared and run under, until
 * je_pop_internal_settings(level).  With claim_planner, also those the
 * claim's plans must be made under: the claim must walk jobs_claim_idx in
 * order and stop at the first free row, whatever stale statistics say.  A
 * plan is remade at execution whenever it was invalidated (by ANALYZE, say),
 * so they are set for every execution, not only the first.
 */
int
je_push_internal_settings(bool claim_planner)
{
	int			level = NewGUCNestLevel();

	set_local("search_path", INTERNAL_SEARCH_PATH);
	/*
	 * A worker's bookkeeping waits for its locks, whatever lock_timeout
	 * users' sessions are given (a user's call keeps its own).
	 */
	if (je_am_background_worker() && LockTimeout != 0)
		set_local("lock_timeout", "0");
	/*
	 * The install script's literals are written for standard strings (the
	 * patterns and unquoting of pg_cron commands hold backslashes), and the
	 * internal functions are parsed in the caller's session, where any role
	 * may turn them off: a backslash would then be an escape.
	 */
	if (!standard_conforming_strings)
		set_local("standard_conforming_strings", "on");
	if (claim_planner)
	{
		set_local("enable_sort", "off");
		set_local("enable_seqscan", "off");
		set_local("enable_bitmapscan", "off");
		/* A handful of rows drive each statement: probe, never hash or sort-merge. */
		set_local("enable_hashjoin", "off");
		set_local("enable_mergejoin", "off");
		/* enable_sort = off prices any sort past the JIT thresholds. */
		set_local("jit", "off");
	}
	return level;
}

void
je_pop_internal_settings(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * Enters a bounded wait for locks, until je_pop_internal_settings(level):
 * the engine's own records wait at most `ms` for a row that a user's
 * transaction holds (an abort() left open), instead of stalling behind it.
 * Push it after je_push_internal_settings(), which resets lock_timeout, and
 * run the statement with SPI_execute_plan (je_execute_plan pushes the
 * internal settings again).
 */
int
je_push_lock_timeout(int ms)
{
	int			level = NewGUCNestLevel();
	char		value[32];

	snprintf(value, sizeof(value), "%dms", ms);
	set_local("lock_timeout", value);
	return level;
}
