/*
 * deferred.c
 *	  Jobs not yet due, kept out of the claim until they are
 *	  (docs/architecture.md, "Jobs not yet due").
 *
 * A waiting job whose run_at is in the future (submitted with a run_at, or
 * retrying after a backoff) is written deferred: blocked 't', so that it
 * is not in jobs_claim_idx but in jobs_deferred_idx, keyed on run_at.  The
 * lifecycle guard decides it for every row written (guard.c), and notes
 * the run_at for the table of claim marks of the database (dispatch.c),
 * which keeps, in shared memory, a time before which no committed
 * deferred job is due.  When that time has come, the next claim first
 * releases the jobs due: one UPDATE makes them candidates (blocked NULL),
 * and the guard notes them as it notes any candidate, for the marks and
 * the executors' wake-up.  An executor about to sleep releases too, and
 * sleeps until the next deferred job is due (_next_due_in()).
 *
 * Why: a claim walks jobs_claim_idx in (queue, priority, run_at, id)
 * order.  Jobs not yet due in it lie in the way of the due ones behind
 * them, in every queue that has some, and any role that may submit can
 * put there as many as it likes: a claim would pass over all of them,
 * every time.  Deferred, they cost a claim nothing, and a release reads
 * only the ones due.
 *
 * Nothing depends on a job being deferred: a candidate not yet due (a row
 * written while the guard was disabled, or under session_replication_role
 * = replica) is still passed over by the claim, only at a cost.  A
 * database still at release 1.0 has no jobs_deferred_idx: there nothing
 * is deferred (je_deferred_supported()).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "deferred.h"
#include "dispatch.h"
#include "internal_sql.h"
#include "settings.h"
#include "wakeup.h"

/* Jobs made candidates by one release statement at most. */
#define RELEASE_BATCH 1000
/*
 * How long after a release that made no candidate (the due jobs' rows were
 * locked by other transactions) a claim of this process tries again.
 */
#define RELEASE_RETRY_MS 100

/*
 * The deferred jobs due at $1, made candidates, earliest first; rows other
 * transactions hold are left for a later release.
 */
static const char *release_sql =
"UPDATE job_engine._jobs x SET blocked = NULL"
" WHERE x.id OPERATOR(pg_catalog.=) ANY (ARRAY("
"    SELECT d.id FROM job_engine._jobs d"
"     WHERE d.state IN ('created', 'retrying') AND d.blocked OPERATOR(pg_catalog.=) 't'"
"       AND d.run_at OPERATOR(pg_catalog.<=) $1"
"     ORDER BY d.run_at"
"     LIMIT " CppAsString2(RELEASE_BATCH)
"     FOR UPDATE OF d SKIP LOCKED))";

/* When the next deferred job is due (NULL: none is left). */
static const char *next_sql =
"SELECT pg_catalog.min(d.run_at) FROM job_engine._jobs d"
" WHERE d.state IN ('created', 'retrying') AND d.blocked OPERATOR(pg_catalog.=) 't'";

static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr next_plan = NULL;

/* No release by a claim of this process before this (RELEASE_RETRY_MS). */
static TimestampTz next_try = 0;

/*
 * The last release of this process, whatever the table said.  A row the
 * table was never told of (written by a transaction prepared for two-phase
 * commit: COMMIT PREPARED runs no callback of the writer, or with the
 * guard disabled) would otherwise wait for an executor to go idle, which
 * under a steady load none does: a claim also releases once every
 * poll_interval, the executors' safety net.
 */
static TimestampTz last_release = 0;

/*
 * Whether the schema installed in this database keeps deferred jobs (from
 * release 1.1 on: it has jobs_deferred_idx).  Needs a transaction.
 */
bool
je_deferred_supported(void)
{
	Oid			nsp = get_namespace_oid("job_engine", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("jobs_deferred_idx", nsp));
}

/*
 * Releases the deferred jobs due now, in the current transaction and SPI
 * connection, having read deferred_gen `gen` before any snapshot of it;
 * returns how many.  When it released them all, the time the next one is
 * due goes to the table of marks at commit.  Idle executors are woken at
 * commit for the others.
 */
static uint64
release_due(uint64 gen, TimestampTz now)
{
	Datum		arg = TimestampTzGetDatum(now);
	uint64		released;
	bool		isnull;
	Datum		next;

	if (release_plan == NULL)
	{
		Oid			argtypes[1] = {TIMESTAMPTZOID};

		release_plan = je_keep_generic_plan(release_sql, 1, argtypes);
		next_plan = je_keep_plan(next_sql, 0, NULL);
	}
	if (je_execute_plan(release_plan, &arg, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "job_engine: releasing deferred jobs failed");
	released = SPI_processed;
	/* A snapshot older than `gen` could miss a job deferred since. */
	if (released < RELEASE_BATCH && !IsolationUsesXactSnapshot())
	{
		if (je_execute_plan(next_plan, NULL, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "job_engine: looking for the next deferred job failed");
		next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		je_dispatch_deferred_found(gen, isnull ? DT_NOEND : DatumGetTimestampTz(next));
	}
	next_try = released > 0 ? 0 : TimestampTzPlusMilliseconds(now, RELEASE_RETRY_MS);
	last_release = now;
	if (released > 0)
		je_wake_on_commit((int) Min(released, (uint64) PG_INT32_MAX));
	return released;
}

/*
 * Releases the deferred jobs due, in a subtransaction of the current
 * transaction and SPI connection; returns how many.  With `always` (an
 * executor about to sleep), whatever the table of marks says: rows written
 * unnoted, or by a transaction prepared for two-phase commit, are found
 * too.  Else (a claim, before it picks) only when the table says one may
 * be due, or poll_interval after this process last released.  A release that fails is reported as a WARNING and tried again a
 * second later: the claim goes on without it.
 */
uint64
je_deferred_release_guarded(bool always)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	TimestampTz now = GetCurrentTimestamp();
	uint64		gen = 0;
	uint64		released = 0;
	bool		due = je_dispatch_deferred_due(now, &gen);

	if (!always && (now < next_try ||
					 (!due && now < TimestampTzPlusMilliseconds(last_release, je_poll_interval_ms))))
		return 0;
	if (!je_deferred_supported())
		return 0;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		released = release_due(gen, now);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		next_try = TimestampTzPlusMilliseconds(now, 1000);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("job_engine could not release the jobs now due: %s", edata->message),
				 errdetail("They are released by a later claim.")));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return released;
}
