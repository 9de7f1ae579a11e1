/*
 * settings.c
 *	  Defines the job_engine.* GUCs and parses job_engine.databases.
 *
 * databases and max_workers size shared memory, so they are postmaster-only;
 * the rest can be changed with a reload and are re-read by the workers on
 * SIGHUP.
 */
#include "postgres.h"

#include <limits.h>

#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "settings.h"

char	   *je_databases = NULL;
int			je_max_workers = 4;
int			je_poll_interval_ms = 1000;
int			je_default_timeout_ms = 10 * 60 * 1000;
bool		je_notify = true;
int			je_retention_s = 7 * 24 * 3600;
int			je_vacuum_after = 5000;
int			je_failure_log_level = LOG;
bool		je_allow_superuser_jobs = true;
int			je_abort_grace_ms = 5000;

/* Levels for job_engine.log_failures; "off" logs nothing. */
static const struct config_enum_entry failure_log_levels[] = {
	{"debug", DEBUG1, false},
	{"info", INFO, false},
	{"notice", NOTICE, false},
	{"log", LOG, false},
	{"warning", WARNING, false},
	{"off", 0, false},
	{NULL, 0, false}
};

/* Check hook: the list must parse as identifiers so workers can rely on it. */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names = NIL;
	bool		ok = SplitIdentifierString(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

void
je_define_settings(void)
{
	DefineCustomStringVariable("job_engine.databases",
							   "Databases in which job_engine runs workers.",
							   "A comma-separated list of database names.",
							   &je_databases,
							   "postgres",
							   PGC_POSTMASTER, 0,
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
							"Submits wake executors at once; this is only a safety net.",
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

	DefineCustomEnumVariable("job_engine.log_failures",
							 "Server log level of failed, crashed and aborted attempts.",
							 "Each line names the job, handler, attempt and SQLSTATE; off logs nothing.",
							 &je_failure_log_level,
							 LOG, failure_log_levels,
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

	MarkGUCPrefixReserved("job_engine");
}

/* The database names of job_engine.databases, in order (palloc'd). */
List *
je_database_list(void)
{
	List	   *names = NIL;

	if (!SplitIdentifierString(pstrdup(je_databases), ',', &names))
		elog(ERROR, "invalid job_engine.databases");
	return names;
}

int
je_database_count(void)
{
	return list_length(je_database_list());
}
