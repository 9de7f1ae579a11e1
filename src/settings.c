/*
 * settings.c
 *	  Defines the job_engine.* GUCs and parses job_engine.databases.
 *
 * databases and max_workers size shared memory, so they are postmaster-only;
 * the rest can be changed with a reload and are re-read by the workers on
 * SIGHUP.
 *
 * The settings are read as a DBA expects from PostgreSQL's own: database
 * names as pg_database spells them (as in pg_hba.conf or a connection
 * string, not folded to lower case like identifiers in SQL), and a server
 * that finds an invalid value or an unknown name of ours in its
 * configuration files refuses to start, where PostgreSQL would only warn
 * about an extension's setting and carry on with the default.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/varlena.h"

#include "compat.h"
#include "settings.h"

#define SETTINGS_PREFIX "job_engine"

char	   *je_databases = NULL;
int			je_max_workers = 4;
int			je_poll_interval_ms = 1000;
int			je_default_timeout_ms = 10 * 60 * 1000;
bool		je_notify = true;
int			je_retention_s = 7 * 24 * 3600;
int			je_vacuum_after = 5000;
int			je_rebuild_max_rows = 200000;
static int	je_max_schedules_per_role = 100;
int			je_failure_log_level = LOG;
int			je_failure_log_limit = 10;
bool		je_allow_superuser_jobs = true;
int			je_abort_grace_ms = 5000;

/*
 * Levels for job_engine.log_failures, those of auto_explain.log_level ("debug"
 * is DEBUG2 there too); "off" logs nothing.
 */
static const struct config_enum_entry failure_log_levels[] = {
	{"debug5", DEBUG5, false},
	{"debug4", DEBUG4, false},
	{"debug3", DEBUG3, false},
	{"debug2", DEBUG2, false},
	{"debug1", DEBUG1, false},
	{"debug", DEBUG2, true},
	{"info", INFO, false},
	{"notice", NOTICE, false},
	{"log", LOG, false},
	{"warning", WARNING, false},
	{"off", 0, false},
	{NULL, 0, false}
};

/*
 * Splits a job_engine.databases value into database names, taken as written:
 * a name is quoted only to hold a comma, a space or a double quote ("" inside
 * the quotes), like the names of shared_preload_libraries.  False if the list
 * syntax is invalid.
 */
static bool
split_databases(const char *value, List **names)
{
	return SplitGUCList(pstrdup(value), ',', names);
}

/* Check hook: every name must be one a database can have. */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	List	   *names = NIL;
	ListCell   *lc;

	if (!split_databases(*newval, &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		GUC_check_errhint("Separate database names with commas; double-quote a name that holds a comma, a space or a double quote.");
		return false;
	}
	foreach(lc, names)
	{
		const char *name = lfirst(lc);

		if (strlen(name) >= NAMEDATALEN)
		{
			GUC_check_errdetail("Database name \"%s\" is longer than %d bytes.",
								name, NAMEDATALEN - 1);
			GUC_check_errhint("Write the name as pg_database.datname shows it: PostgreSQL truncated it when the database was created.");
			return false;
		}
	}
	return true;
}

/* Whether a configuration parameter name is in our prefix. */
static bool
our_setting(const char *name)
{
	return strncmp(name, SETTINGS_PREFIX ".", strlen(SETTINGS_PREFIX ".")) == 0;
}

/* The parameter names job_engine defines, for the hint about an unknown one. */
static char *
defined_setting_names(struct config_generic **vars, int nvars)
{
	StringInfoData names;

	initStringInfo(&names);
	for (int i = 0; i < nvars; i++)
	{
		if (!(vars[i]->flags & GUC_CUSTOM_PLACEHOLDER) && our_setting(vars[i]->name))
			appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "", vars[i]->name);
	}
	return names.data;
}

/* Every configuration parameter the server knows, placeholders included. */
static struct config_generic **
guc_variables(int *nvars)
{
	return je_guc_variables(nvars);
}

/*
 * The job_engine.* values the configuration gave before our settings were
 * defined, as (name, value) pairs: they were placeholders until now.
 */
static List *
configured_values(void)
{
	int			nvars;
	struct config_generic **vars = guc_variables(&nvars);
	List	   *pairs = NIL;

	for (int i = 0; i < nvars; i++)
	{
		const char *name = vars[i]->name;

		if ((vars[i]->flags & GUC_CUSTOM_PLACEHOLDER) && our_setting(name))
		{
			const char *value = GetConfigOption(name, true, false);

			pairs = lappend(pairs, pstrdup(name));
			pairs = lappend(pairs, pstrdup(value ? value : ""));
		}
	}
	return pairs;
}

/*
 * Stops the server from starting over a value the configuration gave that
 * is not one of our settings, or not a valid value of it.  Defining the
 * settings has already tried each value, with a WARNING and the default if it
 * was invalid; validating it again with elevel ERROR, which at postmaster
 * start is FATAL, reports it as PostgreSQL reports its own.
 */
static void
refuse_invalid_values(List *pairs)
{
	int			nvars;
	struct config_generic **vars = guc_variables(&nvars);

	for (int i = 0; i < list_length(pairs); i += 2)
	{
		const char *name = list_nth(pairs, i);
		const char *value = list_nth(pairs, i + 1);

		if (GetConfigOptionFlags(name, false) & GUC_CUSTOM_PLACEHOLDER)
			ereport(FATAL,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("unrecognized configuration parameter \"%s\"", name),
					 errhint("job_engine's parameters are %s.", defined_setting_names(vars, nvars))));
		(void) set_config_option(name, value, PGC_POSTMASTER, PGC_S_FILE,
								 GUC_ACTION_SET, false, ERROR, false);
	}
}

void
je_define_settings(void)
{
	List	   *configured = configured_values();

	DefineCustomStringVariable("job_engine.databases",
							   "Databases in which job_engine runs workers.",
							   "A comma-separated list of database names, as pg_database spells them.",
							   &je_databases,
							   "postgres",
							   PGC_POSTMASTER, GUC_LIST_INPUT,
							   check_databases, NULL, NULL);

	DefineCustomIntVariable("job_engine.max_workers",
							"Executor workers started per database.",
							NULL,
							&je_max_workers,
							4, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.poll_interval",
							"Longest time an idle executor sleeps before looking for jobs.",
							"Submits wake executors at once; this is only a safety net.  Also how often claims look again at every delayed job due but not yet released.",
							&je_poll_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.default_timeout",
							"Statement timeout of an attempt whose handler sets none.",
							"0 disables the timeout.",
							&je_default_timeout_ms,
							10 * 60 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("job_engine.notify",
							 "Sends a NOTIFY on channel job_engine for every outcome.",
							 NULL,
							 &je_notify,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.retention",
							"How long finished jobs are kept before the supervisor purges them.",
							"0 keeps them forever.",
							&je_retention_s,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.vacuum_after",
							"Jobs claimed in a database after which its supervisor vacuums the jobs table.",
							"Each claim leaves a dead entry where the next claim starts its index scan; "
							"vacuuming removes them long before autovacuum would.  0 leaves it to autovacuum.",
							&je_vacuum_after,
							5000, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.rebuild_max_rows",
							"Largest jobs table whose grown indexes the supervisor rebuilds after an old snapshot.",
							"A rebuild holds a share lock on the table, which stops claims and submits, while it "
							"reads the table's rows; over this many rows an index is left to REINDEX INDEX "
							"CONCURRENTLY and a LOG line says so.  0 never rebuilds.",
							&je_rebuild_max_rows,
							200000, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	/* Read by the SQL of schedule() (src/sql/84_schedules.sql). */
	DefineCustomIntVariable("job_engine.max_schedules_per_role",
							"Schedules a role may have; superusers have no limit.",
							"Each schedule costs pg_cron a worker or a connection at every run.  "
							"Settable per role by a superuser (ALTER ROLE ... SET).  0 sets no limit.",
							&je_max_schedules_per_role,
							100, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("job_engine.log_failures",
							 "Server log level of failed, crashed and aborted attempts.",
							 "Each line names the job, handler, database, attempt, SQLSTATE, message and what happens next; off logs nothing.",
							 &je_failure_log_level,
							 LOG, failure_log_levels,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.log_failures_limit",
							"Failed-attempt lines logged per database in 10 seconds at most.",
							"Past it, failures are only counted, and one line says how many were not logged; "
							"job_engine.attempts keeps every one.  0 logs every failure.",
							&je_failure_log_limit,
							10, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("job_engine.allow_superuser_jobs",
							 "Allows jobs owned by superusers.",
							 "When off, submits by superusers are refused and such jobs already queued fail at run time.",
							 &je_allow_superuser_jobs,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("job_engine.abort_grace",
							"How long an aborted attempt may ignore its cancel before its executor is terminated.",
							"The supervisor then ends the executor with SIGTERM; 0 never escalates.",
							&je_abort_grace_ms,
							5000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	refuse_invalid_values(configured);
	MarkGUCPrefixReserved(SETTINGS_PREFIX);
}

/* Whether `names` holds `name`, compared as written. */
static bool
name_listed(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

/*
 * The database names of job_engine.databases, in order (palloc'd); a name
 * listed twice is served once.
 */
List *
je_database_list(void)
{
	List	   *listed = NIL;
	List	   *names = NIL;
	ListCell   *lc;

	if (!split_databases(je_databases, &listed))
		elog(ERROR, "invalid job_engine.databases");
	foreach(lc, listed)
	{
		if (!name_listed(names, lfirst(lc)))
			names = lappend(names, lfirst(lc));
	}
	return names;
}

int
je_database_count(void)
{
	return list_length(je_database_list());
}

/* Whether job_engine.databases lists a database of exactly that name. */
bool
je_serves_database(const char *dbname)
{
	return name_listed(je_database_list(), dbname);
}

PG_FUNCTION_INFO_V1(job_engine_serves_database);

/* job_engine_internal._serves_database(name): je_serves_database for SQL. */
Datum
job_engine_serves_database(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(je_serves_database(NameStr(*PG_GETARG_NAME(0))));
}
