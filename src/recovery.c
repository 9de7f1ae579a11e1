/*
 * recovery.c
 *	  The supervisor's recovery of crashed attempts: the C side of the SQL
 *	  functions job_engine._recover_crashed() and _recover_orphans(), which
 *	  record the attempts as crashed and apply the retry policy.
 *
 * A claim commits before its handler starts, so a job left 'running' with
 * no live worker is evidence of a crash.  The supervisor (supervisor.c)
 * calls these at start (every running job: no executor of ours is alive),
 * when it reaps an exited executor (that pid's jobs), and every few
 * seconds for jobs whose worker process is gone without an executor exit
 * having been seen.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "recovery.h"
#include "worker.h"

/*
 * Records the running attempts of the given dead executor pids as crashed
 * and applies the retry policy (NULL array: every running job).
 */
void
je_recover_crashed(int *pids, int npids, const char *dbname)
{
	static SPIPlanPtr all_plan = NULL;
	static SPIPlanPtr pids_plan = NULL;
	Oid			argtypes[1] = {INT4ARRAYOID};
	Datum		values[1];
	uint64		recovered = 0;
	Datum	   *elems = palloc(sizeof(Datum) * Max(npids, 1));

	for (int i = 0; i < npids; i++)
		elems[i] = Int32GetDatum(pids[i]);
	values[0] = PointerGetDatum(construct_array(elems, npids, INT4OID, 4, true, TYPALIGN_INT));

	if (pids == NULL)
		recovered = je_worker_run_statement("job_engine: recovering attempts after restart", &all_plan,
											"SELECT job_engine._recover_crashed(NULL::pg_catalog.int4[])",
											0, NULL, NULL);
	else
		recovered = je_worker_run_statement("job_engine: recovering attempts of exited executors", &pids_plan,
											"SELECT job_engine._recover_crashed($1)",
											1, argtypes, values);
	if (recovered > 0)
		ereport(LOG,
				(errmsg("job_engine: recorded " UINT64_FORMAT " interrupted attempt(s) as crashed in database \"%s\"",
						recovered, dbname)));
}

/*
 * Records as crashed the running jobs whose worker process is gone without
 * this supervisor having seen an executor exit: a session that claimed and
 * disconnected, or jobs restored from a dump taken while they ran.
 */
void
je_recover_orphans(const char *dbname)
{
	static SPIPlanPtr plan = NULL;
	uint64		recovered;

	recovered = je_worker_run_statement("job_engine: recovering orphaned attempts", &plan,
										"SELECT job_engine._recover_orphans()", 0, NULL, NULL);
	if (recovered > 0)
		ereport(LOG,
				(errmsg("job_engine: recorded " UINT64_FORMAT " orphaned attempt(s) as crashed in database \"%s\"",
						recovered, dbname),
				 errdetail("Their worker processes no longer exist.")));
}
