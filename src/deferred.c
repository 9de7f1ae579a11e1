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
 * the executors' wake-up.  An executor that claimed nothing sleeps until
 * the next deferred job is due (_next_due_in()) or for poll_interval.  A
 * release looks only at the jobs due since the last one; a sweep, once
 * every poll_interval, at all those due, for rows nothing noted.
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
#include "utils/timestamp.h"

#include "deferred.h"
#include "dispatch.h"
#include "internal_sql.h"
#include "settings.h"
#include "wakeup.h"
#include "worker.h"

/* Jobs made candidates by one release statement at most. */
#define RELEASE_BATCH 1000
/* After a release failed, none by this process for this long. */
#define RELEASE_RETRY_MS 1000

/*
 * The deferred jobs due after $2 and by $1, made candidates, earliest
 * first; rows other transactions hold are skipped, left to a sweep.
 */
static const char *release_sql =
"UPDATE job_engine._jobs x SET blocked = NULL"
" WHERE x.id OPERATOR(pg_catalog.=) ANY (ARRAY("
"    SELECT d.id FROM job_engine._jobs d"
"     WHERE d.state IN ('created', 'retrying') AND d.blocked OPERATOR(pg_catalog.=) 't'"
"       AND d.run_at OPERATOR(pg_catalog.>) $2 AND d.run_at OPERATOR(pg_catalog.<=) $1"
"     ORDER BY d.run_at"
"     LIMIT " CppAsString2(RELEASE_BATCH)
"     FOR UPDATE OF d SKIP LOCKED))";

/*
 * When the next deferred job due after $1 is (NULL: none is).  Those due
 * by $1 and still deferred had their rows locked by other transactions: a
 * sweep looks at them again, not every claim.
 */
static const char *next_sql =
"SELECT pg_catalog.min(d.run_at) FROM job_engine._jobs d"
" WHERE d.state IN ('created', 'retrying') AND d.blocked OPERATOR(pg_catalog.=) 't'"
"   AND d.run_at OPERATOR(pg_catalog.>) $1";

static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr next_plan = NULL;

/* No release by this process before this, after one failed. */
static TimestampTz next_try = 0;

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
 * Releases the deferred jobs due after `from` and by `now`, in the current
 * transaction and SPI connection, having read deferred_gen `gen` before
 * any snapshot of it; returns how many.  When it released them all (but
 * for rows locked), when the next one is due goes to the table of marks at
 * commit.  Idle executors are woken at commit for the jobs released.
 */
static uint64
release_due(uint64 gen, TimestampTz from, TimestampTz now)
{
	Datum		args[2] = {TimestampTzGetDatum(now), TimestampTzGetDatum(from)};
	uint64		released;
	bool		isnull;
	Datum		next;

	if (release_plan == NULL)
	{
		Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};

		release_plan = je_keep_generic_plan(release_sql, 2, argtypes);
		next_plan = je_keep_generic_plan(next_sql, 1, argtypes);
	}
	if (je_execute_plan(release_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "job_engine: releasing deferred jobs failed");
	released = SPI_processed;
	/* A snapshot older than `gen` could miss a job deferred since. */
	if (released < RELEASE_BATCH && !IsolationUsesXactSnapshot())
	{
		if (je_execute_plan(next_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "job_engine: looking for the next deferred job failed");
		next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		je_dispatch_deferred_found(gen, isnull ? DT_NOEND : DatumGetTimestampTz(next), now);
	}
	if (released > 0)
		je_wake_on_commit((int) Min(released, (uint64) PG_INT32_MAX));
	return released;
}

/*
 * Whether a release is due at `now`, and of which jobs: those due after
 * *from (released_to), or, when a sweep is due, all (*from DT_NOBEGIN).
 * With `take`, a due sweep is this caller's to make.  *gen gets
 * deferred_gen, read before any snapshot of the release.
 */
static bool
release_due_now(TimestampTz now, bool take, uint64 *gen, TimestampTz *from)
{
	bool		due;

	if (now < next_try)
		return false;
	due = je_dispatch_deferred_due(now, gen, from);
	if (!je_dispatch_deferred_sweep(now, je_poll_interval_ms, take))
		return due;
	*from = DT_NOBEGIN;
	return true;
}

/*
 * Whether je_deferred_release_guarded() would release now: for a caller
 * that needs a transaction of its own for it.  No transaction needed.
 */
bool
je_deferred_release_wanted(void)
{
	uint64		gen;
	TimestampTz from;

	return release_due_now(GetCurrentTimestamp(), false, &gen, &from);
}

/* A release's window, for release_in(). */
typedef struct ReleaseArgs
{
	uint64		gen;
	TimestampTz from;
	TimestampTz now;
	uint64		released;
} ReleaseArgs;

static void
release_in(void *arg)
{
	ReleaseArgs *r = (ReleaseArgs *) arg;

	r->released = release_due(r->gen, r->from, r->now);
}

/*
 * For a claim, before it picks: releases the deferred jobs due, in a
 * subtransaction of the current transaction and SPI connection; returns
 * how many.  Only when the table of marks says one may be due, and then
 * only those due since the last release; and once every poll_interval per
 * database, a sweep of all those due: rows the table was never told of
 * (written by a transaction prepared for two-phase commit, whose COMMIT
 * PREPARED runs no callback of the writer, or with the guard disabled), or
 * whose rows were locked by another transaction at the last release.  So
 * a role that holds the rows of its own due jobs locked, for as long as it
 * likes, costs a pass over them once every poll_interval, not at every
 * claim.  A release that fails is reported as a WARNING and tried again a
 * second later: the claim goes on without it.
 */
uint64
je_deferred_release_guarded(void)
{
	ReleaseArgs r = {0, 0, GetCurrentTimestamp(), 0};
	ErrorData  *edata;

	if (!release_due_now(r.now, true, &r.gen, &r.from))
		return 0;
	if (!je_deferred_supported())
	{
		/* Nothing is deferred at 1.0: the update to 1.1 notes what it defers. */
		je_dispatch_deferred_found(r.gen, DT_NOEND, r.now);
		return 0;
	}
	edata = je_in_subtransaction(release_in, &r);
	if (edata == NULL)
		return r.released;
	next_try = TimestampTzPlusMilliseconds(r.now, RELEASE_RETRY_MS);
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("job_engine could not release the jobs now due: %s", edata->message),
			 errdetail("They are released by a later claim.")));
	FreeErrorData(edata);
	return 0;
}
