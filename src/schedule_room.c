/*
 * schedule_room.c
 *	  How many schedules a role has, counted so that concurrent schedule()
 *	  calls of the role cannot together pass job_engine.max_schedules_per_role.
 *
 * _require_schedule_room() (src/sql/84_schedules.sql) counts the role's
 * schedules in cron.job and refuses a new one at the limit; pg_cron's row is
 * inserted after it, in the same transaction.  Two calls that both counted
 * before either had committed would both find room, so the count is taken
 * under a lock per role, held until the transaction ends: a second call
 * waits for the first to commit or roll back.  The lock is an advisory lock
 * tag whose fourth field is one that pg_advisory_lock() and its kin never
 * use (they use 1 and 2): no user's advisory lock can take or block it.
 *
 * Waiting is not enough under REPEATABLE READ or SERIALIZABLE: the
 * transaction's snapshot may predate a schedule that another call committed
 * while this one waited, or before it asked.  So the count reads with a
 * snapshot taken after the lock, as PostgreSQL's foreign key checks read
 * under those levels (ri_triggers.c): it sees every committed schedule, and
 * this transaction's own.
 *
 * Whether the call replaces a schedule of the same name (which adds none,
 * so is not refused) is decided here too, under the lock and from the same
 * snapshot: decided before, from the caller's snapshot, a name unscheduled
 * since (committed, or committing while the call waits for its row) passed
 * for a replacement, and pg_cron's upsert then inserted a new schedule that
 * no lock or count covered.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/lock.h"
#include "utils/snapmgr.h"

#include "internal_sql.h"

/* The fourth field of the lock's tag: "JE", never 1 or 2 (see above). */
#define SCHEDULE_ROOM_LOCK_SPACE 0x4a45

PG_FUNCTION_INFO_V1(job_engine_schedules_of);

/*
 * job_engine_internal._schedules_of(role oid, role_name text, schedule_name
 * text): the number of job_engine schedules of the role in cron.job, after
 * taking the role's lock for the rest of the transaction; NULL when one of
 * them is named schedule_name (scheduling it replaces it).
 */
Datum
job_engine_schedules_of(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	Datum		args[2] = {PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)};
	LOCKTAG		tag;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	SPIPlanPtr	plan;
	int			level;
	int			rc;
	bool		isnull;
	int64		count;
	bool		replaces;

	/* Cluster-wide (no database): cron.job is one table for the cluster. */
	SET_LOCKTAG_ADVISORY(tag, InvalidOid, role, 0, SCHEDULE_ROOM_LOCK_SPACE);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);

	SPI_connect();
	level = je_push_internal_settings(false);
	plan = SPI_prepare("SELECT pg_catalog.count(*),"
					   "       COALESCE(pg_catalog.bool_or(c.jobname OPERATOR(pg_catalog.=) $2), false)"
					   "  FROM cron.job c"
					   " WHERE c.username OPERATOR(pg_catalog.=) $1"
					   " AND _is_schedule_command(c.command)",
					   2, argtypes);
	if (plan == NULL)
		elog(ERROR, "job_engine: could not prepare the count of schedules: %s",
			 SPI_result_code_string(SPI_result));
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, false, 1);
	je_pop_internal_settings(level);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "job_engine: counting schedules failed: %s", SPI_result_code_string(rc));
	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	replaces = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();
	if (replaces)
		PG_RETURN_NULL();
	PG_RETURN_INT64(count);
}
