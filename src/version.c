/*
 * version.c
 *	  Which versions of the extension's SQL objects this library serves, and
 *	  the version installed in the current database.
 *
 * The library runs the extension's functions and reads its tables by name
 * (internal_sql.c, gate.c), so it works only with the versions of the
 * schema it was written for: those of served_versions.  A supervisor serves
 * a database whose installed version (pg_extension.extversion) is one of
 * them and waits, with one WARNING, while it is another (worker.c); the
 * public functions refuse to run there (gate.c).  The list keeps the
 * previous release as long as this library still works with its schema, so
 * that a database keeps running its jobs between the restart that loads a
 * new library and its ALTER EXTENSION job_engine UPDATE (docs/upgrading.md
 * says when a version joins or leaves the list).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "version.h"

/* The newest first: it is default_version of job_engine.control. */
static const char *const served_versions[] = {"1.1", "1.0"};

#define N_SERVED_VERSIONS lengthof(served_versions)

/* Whether the current transaction has checked the installed version. */
static bool checked_in_xact = false;
static bool xact_callback_registered = false;

/*
 * The extversion of job_engine in the current database (palloc'd), or NULL
 * when the extension is not installed.  Needs a transaction.
 */
char *
je_installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("job_engine"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

bool
je_version_served(const char *version)
{
	for (int i = 0; i < N_SERVED_VERSIONS; i++)
	{
		if (strcmp(version, served_versions[i]) == 0)
			return true;
	}
	return false;
}

/*
 * Whether version a is newer than b, comparing the numbers between the dots
 * ("1.10" is newer than "1.9").
 */
static bool
version_newer(const char *a, const char *b)
{
	while (*a != '\0' || *b != '\0')
	{
		char	   *end_a;
		char	   *end_b;
		long		na = strtol(a, &end_a, 10);
		long		nb = strtol(b, &end_b, 10);

		if ((end_a == a && *a != '\0') || (end_b == b && *b != '\0'))
			return strcmp(a, b) > 0;	/* not a number: any order will do */
		if (na != nb)
			return na > nb;
		a = end_a + (*end_a == '.');
		b = end_b + (*end_b == '.');
	}
	return false;
}

/*
 * Reports at elevel that this database has a version of the extension this
 * library does not serve, and what to do: update the extension when it is
 * older than the library, restart the server (to load the library installed
 * with that version) when it is newer.
 */
void
je_report_unserved_version(int elevel, const char *version)
{
	StringInfoData list;
	bool		newer = version_newer(version, served_versions[0]);

	initStringInfo(&list);
	for (int i = N_SERVED_VERSIONS - 1; i >= 0; i--)
		appendStringInfo(&list, "%s%s", served_versions[i], i > 0 ? ", " : "");

	ereport(elevel,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("job_engine %s is installed in database \"%s\", a version this library does not serve",
					version, get_database_name(MyDatabaseId)),
			 errdetail("The job_engine library loaded by this server serves versions %s; jobs of this database do not run and its job_engine functions refuse to run until the versions agree.",
					   list.data),
			 newer ?
			 errhint("Restart the server to load the job_engine library installed with version %s.",
					 version) :
			 errhint("Run ALTER EXTENSION job_engine UPDATE in database \"%s\".",
					 get_database_name(MyDatabaseId))));
	pfree(list.data);
}

static void
version_xact_callback(XactEvent event, void *arg)
{
	checked_in_xact = false;
}

/*
 * Raises an ERROR when the installed version is not one this library
 * serves.  The public functions call it on every call (gate.c), so the
 * catalog is read once per transaction: ALTER EXTENSION ... UPDATE in
 * another session is seen by the next transaction.
 */
void
je_require_served_version(void)
{
	char	   *version;

	if (checked_in_xact)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(version_xact_callback, NULL);
		xact_callback_registered = true;
	}
	version = je_installed_version();
	if (version != NULL && !je_version_served(version))
		je_report_unserved_version(ERROR, version);
	checked_in_xact = true;
}
