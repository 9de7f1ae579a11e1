/*
 * claim.c
 *	  The claim: picks the next runnable jobs of this database and marks them
 *	  running, for an executor (executor.c) or for job_engine_internal._claim(); and
 *	  the executor's claim buffers, filled by a claim in a transaction of its
 *	  own (je_claim_next) or chained to the transaction recording an
 *	  attempt (je_claim_chained).
 *
 * Runnable (docs/architecture.md, "3. Claim → attempt → record"): waiting,
 * due, its queue not paused, its dependencies succeeded, no earlier
 * unfinished job of its owner with its ordering key, and room left under
 * its queue's concurrency limit.
 *
 * Candidates are the waiting jobs not held back (blocked IS NULL): a job
 * that a claim found blocked by a dependency or an ordering key is held
 * back (job_engine_internal._hold()) and leaves jobs_claim_idx until a transition
 * that may unblock it releases it (_unblock()).  So no claim looks at a
 * blocked job twice, and what a claim costs does not depend on how much
 * blocked work waits, in how many queues.
 *
 * Jobs not yet due are not candidates either: they are deferred, and
 * before each claim the jobs that have come due are released (deferred.c),
 * outside the claim's (sub)transaction, so that they stay released
 * whatever becomes of the claim, and the walk below never passes over them.
 *
 * Prepared statements do the common case:
 *   1. the heads: the first due candidate of each unpaused queue, the first
 *      PICK_HEADS of them in claim order, each with whether it may be
 *      blocked.  Each queue is entered at its claim mark (dispatch.c), below
 *      which it has no committed candidate, so that the index entries of
 *      the jobs claimed since the oldest snapshot, which no vacuum can
 *      remove while it lives, are not walked; the queues a table of marks
 *      that overflows does not list, by stepping through the gaps between
 *      the listed ones; every queue while the table is invalid, by stepping
 *      through jobs_claim_idx queue by queue from each queue's start (one
 *      index descent per queue that has a due candidate, none for the
 *      others);
 *      no locks taken, so jobs parked in a paused or full queue, or held
 *      back, are never scanned;
 *   2. in the first queue whose head is not blocked, lock up to
 *      group_commit runnable jobs FOR UPDATE SKIP LOCKED, mark them running,
 *      insert their attempts and return them with their handlers, all in
 *      one statement.  A group never mixes owners: its first job is claimed
 *      alone, then the others only among that job's owner's (the group's
 *      jobs share a transaction, docs/architecture.md "Group commit").
 * A blocked head, and the blocked jobs right behind it, are held back, and
 * the heads picked again.  A queue with a concurrency limit has its turn
 * taken (a row of job_engine._queue_turns locked) and its running jobs
 * counted between the two, so that concurrent claims cannot overshoot it.
 * A queue with nothing claimable (its jobs being claimed, or the queue
 * full) is excluded and the next head tried.  No step waits for a lock a
 * user's transaction can hold.
 *
 * The statements are planned once per process, generically, under the
 * settings of je_push_internal_settings(true) (internal_sql.c).  Running
 * them from C keeps a claim at two statements and no function call, the
 * claim being about half of an executor's CPU time per job.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "nodes/makefuncs.h"
#include "postmaster/interrupt.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "claim.h"
#include "deferred.h"
#include "dispatch.h"
#include "execution_context.h"
#include "internal_sql.h"
#include "running.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

/* Heads returned by one pick: enough to try several queues per statement. */
#define PICK_HEADS 32

/*
 * 1. the heads of the queues to claim from, in claim order.  The recursive
 * part steps from queue to queue through jobs_claim_idx: each step is the
 * first due candidate of the next queue.  A queue without a row in
 * job_engine.queues (one removed by retention while a submit to it was
 * uncommitted) has the defaults.  Whether a head has dependencies or an
 * ordering key says whether it may be blocked: that is asked of such heads
 * only (head_blocked_sql), so that the pick itself stays small.
 */
static const char *pick_heads_sql =
"WITH RECURSIVE h AS ("
"    (SELECT j.queue, j.priority, j.run_at, j.id, j.owner, j.ordering_key, j.depends_on"
"       FROM job_engine._jobs j"
"      WHERE j.state IN ('created', 'retrying') AND j.blocked IS NULL"
"        AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"      ORDER BY j.queue, j.priority, j.run_at, j.id"
"      LIMIT 1)"
"    UNION ALL"
"    SELECT n.* FROM h CROSS JOIN LATERAL ("
"        SELECT j.queue, j.priority, j.run_at, j.id, j.owner, j.ordering_key, j.depends_on"
"          FROM job_engine._jobs j"
"         WHERE j.state IN ('created', 'retrying') AND j.blocked IS NULL"
"           AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"           AND j.queue OPERATOR(pg_catalog.>) h.queue"
"         ORDER BY j.queue, j.priority, j.run_at, j.id"
"         LIMIT 1) n)"
"SELECT h.queue, wq.concurrency, COALESCE(wq.group_commit, 1), h.priority, h.run_at, h.id,"
"       h.depends_on IS NOT NULL OR h.ordering_key IS NOT NULL"
"  FROM h LEFT JOIN job_engine.queues wq ON wq.name OPERATOR(pg_catalog.=) h.queue"
" WHERE NOT COALESCE(wq.paused, false)"
"   AND h.queue OPERATOR(pg_catalog.<>) ALL ($1)"
" ORDER BY h.priority, h.run_at, h.id"
" LIMIT " CppAsString2(PICK_HEADS);

/*
 * 1, from the claim marks (dispatch.c): for each queue $2 with candidates,
 * from its mark ($3, $4, $5), its first candidate due or not (f), and its
 * first due candidate (the head): f itself when f is due, as it mostly is;
 * else a second descent, from f (h), or none.  The descent starts at the
 * mark, so it does not walk the index entries of the jobs claimed before
 * it, dead or not.  Every unpaused queue not excluded ($1) is returned,
 * heads first in claim order: the claim advances the marks to f.
 */
static const char *pick_marked_sql =
"SELECT m.queue, wq.concurrency, COALESCE(wq.group_commit, 1),"
"       CASE WHEN f.due THEN f.priority ELSE h.priority END AS priority,"
"       CASE WHEN f.due THEN f.run_at ELSE h.run_at END AS run_at,"
"       CASE WHEN f.due THEN f.id ELSE h.id END AS id,"
"       CASE WHEN f.due THEN f.depends_on IS NOT NULL OR f.ordering_key IS NOT NULL"
"            ELSE h.depends_on IS NOT NULL OR h.ordering_key IS NOT NULL END,"
"       f.priority, f.run_at, f.id"
"  FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]),"
"                  pg_catalog.unnest($3::pg_catalog.int4[]),"
"                  pg_catalog.unnest($4::pg_catalog.timestamptz[]),"
"                  pg_catalog.unnest($5::pg_catalog.int8[])) AS m(queue, priority, run_at, id)"
"  LEFT JOIN job_engine.queues wq ON wq.name OPERATOR(pg_catalog.=) m.queue"
"  LEFT JOIN LATERAL ("
"      SELECT j.priority, j.run_at, j.id, j.depends_on, j.ordering_key,"
"             j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now() AS due"
"        FROM job_engine._jobs j"
"       WHERE j.queue OPERATOR(pg_catalog.=) m.queue"
"         AND j.state IN ('created', 'retrying') AND j.blocked IS NULL"
"         AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=)"
"             ROW(m.priority, m.run_at, m.id)"
"       ORDER BY j.priority, j.run_at, j.id"
"       LIMIT 1) f ON true"
"  LEFT JOIN LATERAL ("
"      SELECT j.priority, j.run_at, j.id, j.depends_on, j.ordering_key FROM job_engine._jobs j"
"       WHERE NOT f.due"
"         AND j.queue OPERATOR(pg_catalog.=) m.queue"
"         AND j.state IN ('created', 'retrying') AND j.blocked IS NULL"
"         AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"         AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=)"
"             ROW(f.priority, f.run_at, f.id)"
"       ORDER BY j.priority, j.run_at, j.id"
"       LIMIT 1) h ON true"
" WHERE NOT COALESCE(wq.paused, false)"
"   AND m.queue OPERATOR(pg_catalog.<>) ALL ($1)"
" ORDER BY 4, 5, 6";

/*
 * 1, for the queues a table of marks that overflows does not list ($2):
 * the first due candidate of each, found without entering a listed queue's
 * range (JE_GAP_WALK); the columns, order and limit of pick_heads_sql.
 */
static const char *pick_gaps_sql =
"WITH RECURSIVE" JE_GAP_WALK("$2", JE_DUE)
"SELECT u.queue, wq.concurrency, COALESCE(wq.group_commit, 1), u.priority, u.run_at, u.id,"
"       u.depends_on IS NOT NULL OR u.ordering_key IS NOT NULL"
"  FROM u LEFT JOIN job_engine.queues wq ON wq.name OPERATOR(pg_catalog.=) u.queue"
" WHERE NOT COALESCE(wq.paused, false)"
"   AND u.queue OPERATOR(pg_catalog.<>) ALL ($1)"
" ORDER BY u.priority, u.run_at, u.id"
" LIMIT " CppAsString2(PICK_HEADS);

/* Whether head $1 (with dependencies or an ordering key) is blocked. */
static const char *head_blocked_sql =
"SELECT EXISTS ("
"           SELECT 1 FROM job_engine._dependencies d"
"             JOIN job_engine._jobs pr ON pr.id OPERATOR(pg_catalog.=) d.depends_on"
"            WHERE d.job_id OPERATOR(pg_catalog.=) j.id"
"              AND pr.state OPERATOR(pg_catalog.<>) 'succeeded')"
"       OR (j.ordering_key IS NOT NULL AND EXISTS ("
"           SELECT 1 FROM job_engine._jobs o"
"            WHERE o.owner OPERATOR(pg_catalog.=) j.owner"
"              AND o.ordering_key OPERATOR(pg_catalog.=) j.ordering_key"
"              AND o.id OPERATOR(pg_catalog.<) j.id"
"              AND o.state IN ('created', 'running', 'retrying')))"
"  FROM job_engine._jobs j WHERE j.id OPERATOR(pg_catalog.=) $1";

/*
 * For a queue with a concurrency limit: its turn taken (the conflicting row
 * locked, not updated), then its running jobs counted.
 */
static const char *take_turn_sql =
"INSERT INTO job_engine._queue_turns AS t (queue) VALUES ($1)"
" ON CONFLICT (queue) DO UPDATE SET queue = EXCLUDED.queue WHERE false";
static const char *count_running_sql =
"SELECT pg_catalog.count(*)::integer FROM job_engine._jobs r"
" WHERE r.state OPERATOR(pg_catalog.=) 'running'"
"   AND r.worker_pid IS NOT NULL"
"   AND r.queue OPERATOR(pg_catalog.=) $1";

/* A blocked head, and the blocked candidates right behind it, held back. */
static const char *hold_sql =
"SELECT _hold($1, $2, $3, $4)";

/*
 * 2. up to $2 runnable jobs of queue $1, claimed for worker $3, starting at
 * the head found by statement 1, key ($4, $5, $6): no waiting job comes
 * before it, and starting there spares a second walk over the index entries
 * of jobs claimed since the last vacuum.  The claimed ids are handed to the
 * UPDATE as an array, not joined: with statistics that call _jobs empty (a
 * new or truncated table), a generic plan joined them by scanning all of
 * _jobs for every claim.  With $7, only jobs of that owner.  The columns are those of job_engine_internal._claim().  The handler is a LEFT JOIN: a job whose
 * handler is gone is still claimed, and its attempt fails saying so, rather
 * than being marked running with nobody to run it.
 */
static const char *claim_sql =
"WITH c AS ("
"    SELECT j.id FROM job_engine._jobs j"
"     WHERE j.queue OPERATOR(pg_catalog.=) $1"
"       AND j.state IN ('created', 'retrying') AND j.blocked IS NULL"
"       AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"       AND ROW(j.priority, j.run_at, j.id) OPERATOR(pg_catalog.>=) ROW($4, $5, $6)"
"       AND ($7::pg_catalog.oid IS NULL OR j.owner OPERATOR(pg_catalog.=) $7)"
"       AND (j.depends_on IS NULL OR NOT EXISTS ("
"                SELECT 1 FROM job_engine._dependencies d"
"                  JOIN job_engine._jobs p ON p.id OPERATOR(pg_catalog.=) d.depends_on"
"                 WHERE d.job_id OPERATOR(pg_catalog.=) j.id"
"                   AND p.state OPERATOR(pg_catalog.<>) 'succeeded'))"
"       AND (j.ordering_key IS NULL OR NOT EXISTS ("
"                SELECT 1 FROM job_engine._jobs o"
"                 WHERE o.owner OPERATOR(pg_catalog.=) j.owner"
"                   AND o.ordering_key OPERATOR(pg_catalog.=) j.ordering_key"
"                   AND o.id OPERATOR(pg_catalog.<) j.id"
"                   AND o.state IN ('created', 'running', 'retrying')))"
"     ORDER BY j.priority, j.run_at, j.id"
"     LIMIT $2"
"     FOR UPDATE OF j SKIP LOCKED),"
" u AS ("
"    UPDATE job_engine._jobs x"
"       SET state = 'running', attempts = x.attempts OPERATOR(pg_catalog.+) 1,"
"           worker_pid = $3"
"     WHERE x.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM c))"
"    RETURNING x.*),"
" a AS ("
"    INSERT INTO job_engine._attempts (job_id, attempt, started_at, worker_pid)"
"    SELECT u.id, u.attempts, pg_catalog.clock_timestamp(), $3 FROM u)"
"SELECT u.id, u.attempts, h.fn, u.owner,"
/* The handler's timeout in ms, inline: a SQL function with a SET clause
 * would be parsed and planned again in every transaction.  NULL without one
 * (LEAST would turn it into the cap), for job_engine.default_timeout. */
"       CASE WHEN h.timeout IS NOT NULL THEN"
"            LEAST(pg_catalog.ceil(pg_catalog.date_part('epoch', h.timeout)"
"                      OPERATOR(pg_catalog.*) 1000), 2147483647)::integer END,"
"       u.args, u.handler, u.queue, u.correlation_id, u.parent_job_id,"
"       u.event_id, h.library, h.symbol"
"  FROM u LEFT JOIN job_engine.handlers h ON h.name OPERATOR(pg_catalog.=) u.handler"
" ORDER BY u.priority, u.run_at, u.id";

static SPIPlanPtr pick_heads_plan = NULL;
static SPIPlanPtr pick_marked_plan = NULL;
static SPIPlanPtr pick_gaps_plan = NULL;
static SPIPlanPtr take_turn_plan = NULL;
static SPIPlanPtr count_running_plan = NULL;
static SPIPlanPtr hold_plan = NULL;
static SPIPlanPtr head_blocked_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr due_plan = NULL;
static SPIPlanPtr unclaim_plan = NULL;

/*
 * Undoes the claims of jobs ($1 ids, $2 attempts) whose attempts never
 * started in worker $3: the attempt row goes, and the job is waiting again
 * as it was before the claim (created after no attempt, retrying after
 * some).  Fenced like an outcome: a job that is no longer running there is
 * left alone.
 */
static const char *unclaim_sql =
"WITH v AS ("
"    SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
"                             pg_catalog.unnest($2::pg_catalog.int4[])) AS v(id, attempt)),"
" j AS ("
"    UPDATE job_engine._jobs x"
"       SET state = CASE WHEN x.attempts OPERATOR(pg_catalog.=) 1"
"                        THEN 'created'::job_engine.job_state"
"                        ELSE 'retrying'::job_engine.job_state END,"
"           started_at = CASE WHEN x.attempts OPERATOR(pg_catalog.=) 1 THEN NULL"
"                             ELSE x.started_at END,"
"           attempts = x.attempts OPERATOR(pg_catalog.-) 1, worker_pid = NULL"
"      FROM v"
"     WHERE x.id OPERATOR(pg_catalog.=) ANY ($1)"
"       AND x.id OPERATOR(pg_catalog.=) v.id"
"       AND x.attempts OPERATOR(pg_catalog.=) v.attempt"
"       AND x.state OPERATOR(pg_catalog.=) 'running'"
"       AND x.worker_pid OPERATOR(pg_catalog.=) $3"
"    RETURNING x.id, v.attempt)"
"DELETE FROM job_engine._attempts a USING j"
" WHERE a.job_id OPERATOR(pg_catalog.=) ANY ($1)"
"   AND a.job_id OPERATOR(pg_catalog.=) j.id"
"   AND a.attempt OPERATOR(pg_catalog.=) j.attempt";

static void
prepare_claim_plans(void)
{
	Oid			text_array[1] = {TEXTARRAYOID};
	Oid			text1[1] = {TEXTOID};
	Oid			int8_1[1] = {INT8OID};
	Oid			head_args[4] = {TEXTOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Oid			claim_args[7] = {TEXTOID, INT4OID, INT4OID, INT4OID, TIMESTAMPTZOID, INT8OID, OIDOID};
	Oid			marked_args[5] = {TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
	TIMESTAMPTZARRAYOID, INT8ARRAYOID};
	Oid			gaps_args[2] = {TEXTARRAYOID, TEXTARRAYOID};

	if (claim_plan != NULL)
		return;
	pick_heads_plan = je_keep_generic_plan(pick_heads_sql, 1, text_array);
	pick_marked_plan = je_keep_generic_plan(pick_marked_sql, 5, marked_args);
	pick_gaps_plan = je_keep_generic_plan(pick_gaps_sql, 2, gaps_args);
	take_turn_plan = je_keep_generic_plan(take_turn_sql, 1, text1);
	count_running_plan = je_keep_generic_plan(count_running_sql, 1, text1);
	hold_plan = je_keep_generic_plan(hold_sql, 4, head_args);
	head_blocked_plan = je_keep_generic_plan(head_blocked_sql, 1, int8_1);
	claim_plan = je_keep_generic_plan(claim_sql, 7, claim_args);
}

/* The array of excluded queue names, as a text[] datum. */
static Datum
queue_names_array(Datum *names, int n)
{
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}

typedef struct QueueHead
{
	Datum		name;			/* text, in the claim's context */
	int32		concurrency;	/* 0: no limit */
	int32		group_commit;
	int32		priority;		/* its first due candidate's key */
	TimestampTz run_at;
	int64		id;
	bool		blocked;		/* that candidate is blocked */
} QueueHead;

/* Whether head `id`, which has dependencies or an ordering key, is blocked. */
static bool
head_blocked(int64 id)
{
	Datum		arg = Int64GetDatum(id);
	bool		isnull;
	Datum		d;

	if (SPI_execute_plan(head_blocked_plan, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: looking at a blocked head failed");
	if (SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

/*
 * Copies row `tup` of statement 1 (either form) into q: the queue, its
 * settings and its head, whose key is NULL when it has no due candidate
 * (returns false then).
 */
static bool
read_head(HeapTuple tup, TupleDesc desc, QueueHead *q, MemoryContext cxt)
{
	bool		isnull;
	Datum		d;
	MemoryContext old;

	old = MemoryContextSwitchTo(cxt);
	q->name = datumCopy(SPI_getbinval(tup, desc, 1, &isnull), false, -1);
	MemoryContextSwitchTo(old);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	q->concurrency = isnull ? 0 : DatumGetInt32(d);
	q->group_commit = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	q->priority = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
	if (isnull)
		return false;
	q->run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
	q->id = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	q->blocked = !isnull && DatumGetBool(d);	/* for now: it may be */
	return true;
}

/*
 * Statement 1 from the claim marks: fills heads[] like pick_heads, and
 * advances the marks of the queues it looked at.  *more: there were more
 * heads than PICK_HEADS.
 */
static int
pick_marked_heads(JeDispatchMarks *marks, Datum excluded, QueueHead *heads,
				  MemoryContext cxt, bool *more)
{
	Datum		args[5];
	Datum	   *names = palloc(sizeof(Datum) * Max(marks->n, 1));
	Datum	   *prios = palloc(sizeof(Datum) * Max(marks->n, 1));
	Datum	   *run_ats = palloc(sizeof(Datum) * Max(marks->n, 1));
	Datum	   *ids = palloc(sizeof(Datum) * Max(marks->n, 1));
	char	  **seen;
	JeDispatchKey *first;
	bool	   *empty;
	int			nrows;
	int			n = 0;
	TupleDesc	desc;

	for (int i = 0; i < marks->n; i++)
	{
		names[i] = CStringGetTextDatum(marks->names[i]);
		prios[i] = Int32GetDatum(marks->keys[i].priority);
		run_ats[i] = TimestampTzGetDatum(marks->keys[i].run_at);
		ids[i] = Int64GetDatum(marks->keys[i].id);
	}
	args[0] = excluded;
	args[1] = queue_names_array(names, marks->n);
	args[2] = PointerGetDatum(construct_array(prios, marks->n, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(run_ats, marks->n, TIMESTAMPTZOID, 8,
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_array(ids, marks->n, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	if (SPI_execute_plan(pick_marked_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: picking queues to claim from failed");
	desc = SPI_tuptable->tupdesc;
	nrows = (int) SPI_processed;
	seen = palloc(sizeof(char *) * Max(nrows, 1));
	first = palloc(sizeof(JeDispatchKey) * Max(nrows, 1));
	empty = palloc(sizeof(bool) * Max(nrows, 1));
	*more = false;
	for (int i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		d;

		seen[i] = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 8, &isnull);
		empty[i] = isnull;
		if (!isnull)
		{
			first[i].priority = DatumGetInt32(d);
			first[i].run_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &isnull));
			first[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 10, &isnull));
		}
		if (n < PICK_HEADS)
		{
			if (read_head(tup, desc, &heads[n], cxt))
				n++;
		}
		else
		{
			(void) SPI_getbinval(tup, desc, 4, &isnull);
			if (!isnull)
				*more = true;	/* a head past the ones taken */
		}
	}
	je_dispatch_advance(marks->seq, nrows, seen, first, empty);
	return n;
}

/* Orders heads by their keys: claim order. */
static int
head_cmp(const void *a, const void *b)
{
	const QueueHead *x = a;
	const QueueHead *y = b;
	JeDispatchKey kx = {x->priority, x->run_at, x->id};
	JeDispatchKey ky = {y->priority, y->run_at, y->id};

	return je_dispatch_key_cmp(&kx, &ky);
}

/*
 * Runs plan (pick_heads_sql or pick_gaps_sql, with arguments args) and adds
 * its heads to the n in heads[], keeping the first PICK_HEADS in claim
 * order; returns how many there are.  *more: other queues may have heads.
 */
static int
add_walked_heads(SPIPlanPtr plan, Datum *args, QueueHead *heads, int n, MemoryContext cxt,
				 bool *more)
{
	QueueHead  *all = palloc(sizeof(QueueHead) * (n + PICK_HEADS));
	int			nall = n;

	memcpy(all, heads, sizeof(QueueHead) * n);
	if (SPI_execute_plan(plan, args, NULL, false, PICK_HEADS) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: picking queues to claim from failed");
	for (uint64 i = 0; i < SPI_processed && nall < n + PICK_HEADS; i++)
	{
		if (read_head(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &all[nall], cxt))
			nall++;
	}
	if (nall - n == PICK_HEADS)
		*more = true;
	if (n > 0)
		qsort(all, nall, sizeof(QueueHead), head_cmp);
	if (nall > PICK_HEADS)
	{
		nall = PICK_HEADS;
		*more = true;
	}
	memcpy(heads, all, sizeof(QueueHead) * nall);
	return nall;
}

/*
 * Statement 1: fills heads[] (at most PICK_HEADS), in claim order, and
 * returns how many; 0 when no unpaused, non-excluded queue has a due
 * candidate.  *more: other queues may have heads.  From the claim marks
 * when the table is complete; when it overflows, from the marks for the
 * queues it lists and by a walk of the gaps between them for the others;
 * else by the walk from queue to queue.  While it is not complete, with a
 * rebuild of the table now and then (taking effect when this commits).
 */
static int
pick_heads(Datum *excluded, int nexcluded, QueueHead *heads, MemoryContext cxt, bool *more)
{
	Datum		args[2];
	JeDispatchMarks marks;
	int			n = 0;
	bool		usable = je_dispatch_read(&marks);

	args[0] = queue_names_array(excluded, nexcluded);
	*more = false;
	/*
	 * A complete table without a queue says that no queue has a candidate
	 * (its own uncommitted ones included): no statement would find one.
	 * The executor going idle, and the claim chained to every outcome when
	 * the queues are empty, skip it.
	 */
	if (usable && marks.n > 0)
		n = pick_marked_heads(&marks, args[0], heads, cxt, more);
	if (!usable || marks.overflow)
	{
		je_dispatch_rebuild();
		if (marks.n > 0)
		{
			Datum	   *names = palloc(sizeof(Datum) * marks.n);

			for (int i = 0; i < marks.n; i++)
				names[i] = CStringGetTextDatum(marks.names[i]);
			args[1] = queue_names_array(names, marks.n);
			n = add_walked_heads(pick_gaps_plan, args, heads, n, cxt, more);
		}
		else
			n = add_walked_heads(pick_heads_plan, args, heads, n, cxt, more);
	}
	/* SPI_tuptable is read: the heads that may be blocked are asked now. */
	for (int i = 0; i < n; i++)
		if (heads[i].blocked)
			heads[i].blocked = head_blocked(heads[i].id);
	return n;
}

/* The head's key as statement arguments: queue, priority, run_at, id. */
static void
head_args(QueueHead *q, Datum *args)
{
	args[0] = q->name;
	args[1] = Int32GetDatum(q->priority);
	args[2] = TimestampTzGetDatum(q->run_at);
	args[3] = Int64GetDatum(q->id);
}

/* Holds back the blocked candidates from q's head; how many were. */
static int32
hold(QueueHead *q)
{
	Datum		args[4];
	bool		isnull;
	Datum		d;

	head_args(q, args);
	if (SPI_execute_plan(hold_plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "job_engine: holding back blocked jobs failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

/* The OID of job_engine._jobs now (another after DROP and CREATE EXTENSION). */
static Oid
jobs_relid(void)
{
	return RangeVarGetRelid(makeRangeVar("job_engine", "_jobs", -1), NoLock, true);
}

/*
 * For a queue with a concurrency limit: takes its turn, so that claims for
 * it take turns, then counts its running jobs (a statement of its own, whose
 * snapshot sees the claims committed before the turn was ours).  Returns
 * how many more may start.  Only claims take turns: no user's transaction
 * can make this wait.
 */
static int32
queue_room(QueueHead *q)
{
	Datum		running;
	bool		isnull;
	int32		counted;

	if (SPI_execute_plan(take_turn_plan, &q->name, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "job_engine: taking the queue's turn failed");
	/*
	 * From shared memory when it can be trusted (running.c): counting the
	 * rows would read every running version an old snapshot keeps.
	 */
	if (je_running_count(jobs_relid(), TextDatumGetCString(q->name), &counted))
		return q->concurrency - counted;
	if (SPI_execute_plan(count_running_plan, &q->name, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "job_engine: counting running jobs failed");
	running = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return q->concurrency - DatumGetInt32(running);
}

/*
 * Statement 2: up to `limit` jobs of queue q for worker `pid`, of `owner`
 * only unless it is invalid; each row is handed to `sink`, numbered from
 * `first`.  Returns how many were claimed.
 */
static uint64
claim_from(QueueHead *q, int32 limit, int32 pid, Oid owner,
		   JeClaimSink sink, void *arg, uint64 first)
{
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', 'n'};

	args[0] = q->name;
	args[1] = Int32GetDatum(limit);
	args[2] = Int32GetDatum(pid);
	args[3] = Int32GetDatum(q->priority);
	args[4] = TimestampTzGetDatum(q->run_at);
	args[5] = Int64GetDatum(q->id);
	args[6] = ObjectIdGetDatum(owner);
	if (OidIsValid(owner))
		nulls[6] = ' ';
	if (SPI_execute_plan(claim_plan, args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "job_engine: claim failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		sink(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, first + i, arg);
	return SPI_processed;
}

typedef struct Exclusions
{
	Datum	   *names;
	int			n;
	int			max;
} Exclusions;

static void
exclude(Exclusions *ex, Datum name)
{
	if (ex->n == ex->max)
	{
		ex->max *= 2;
		ex->names = repalloc(ex->names, sizeof(Datum) * ex->max);
	}
	ex->names[ex->n++] = name;
}

/*
 * Statement 2 in queue q for worker `pid`, up to `limit` jobs: a group's
 * first job alone, then the rest among its owner's, so that the group has
 * one owner whichever job the queue's head is.  Returns how many were
 * claimed.
 */
static uint64
claim_group(QueueHead *q, int32 limit, int32 pid, JeClaimSink sink, void *arg)
{
	uint64		nclaimed = claim_from(q, 1, pid, InvalidOid, sink, arg, 0);

	if (nclaimed > 0 && limit > 1)
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   4, &isnull));

		nclaimed += claim_from(q, limit - 1, pid, owner, sink, arg, 1);
	}
	return nclaimed;
}

/*
 * Claims for worker `pid` in the current transaction and SPI connection
 * (the caller has released the deferred jobs due: je_deferred_release_guarded).
 * Returns the number of jobs claimed; their rows (the columns of
 * job_engine_internal._claim) are handed to `sink` one by one, in order.
 *
 * The heads are tried in claim order.  At the first blocked head, it and
 * the blocked heads after it are held back and the heads picked again, so
 * that the queues behind them are tried in the right order.  A blocked head
 * that cannot be held back now (another transaction holds its row, for as
 * long as it likes) is claimed past: statement 2 skips blocked jobs and
 * locked rows, so that the rest of its queue still runs.
 * When a pick's heads are all tried without a claim, the next pick starts
 * after them; a pick with fewer heads than PICK_HEADS was the last.
 */
uint64
je_claim(int32 pid, JeClaimSink sink, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	QueueHead  *heads = palloc(sizeof(QueueHead) * PICK_HEADS);
	Exclusions	ex;
	int			level;
	uint64		nclaimed = 0;

	ex.max = 8;
	ex.n = 0;
	ex.names = palloc(sizeof(Datum) * ex.max);
	level = je_push_internal_settings(true);
	prepare_claim_plans();
	for (;;)
	{
		bool		repick;
		int			nheads = pick_heads(ex.names, ex.n, heads, cxt, &repick);

		for (int i = 0; i < nheads && nclaimed == 0; i++)
		{
			QueueHead  *q = &heads[i];
			int32		limit;

			if (q->blocked)
			{
				bool		held = false;

				for (int b = i; b < nheads; b++)
					if (heads[b].blocked)
					{
						if (hold(&heads[b]) > 0)
							held = true;
						else
							heads[b].blocked = false;	/* claimed past */
					}
				if (held)
				{
					repick = true;
					break;
				}
			}
			limit = q->group_commit;
			if (q->concurrency > 0)
				limit = Min(limit, queue_room(q));
			if (limit > 0)
				nclaimed = claim_group(q, limit, pid, sink, arg);
			if (nclaimed == 0)
				exclude(&ex, q->name);
		}
		if (nclaimed > 0 || !repick)
			break;
	}
	je_pop_internal_settings(level);
	return nclaimed;
}

/*
 * Puts claimed jobs whose attempts never started back to waiting, in the
 * current transaction and SPI connection (a group that ends early,
 * group_commit.c).
 */
void
je_unclaim(ExecutionContext *jobs, int njobs)
{
	Datum	   *ids = palloc(sizeof(Datum) * njobs);
	Datum	   *attempts = palloc(sizeof(Datum) * njobs);
	Datum		values[3];
	int			rc;

	for (int i = 0; i < njobs; i++)
	{
		ids[i] = Int64GetDatum(jobs[i].job_id);
		attempts[i] = Int32GetDatum(jobs[i].attempt);
	}
	values[0] = PointerGetDatum(construct_array(ids, njobs, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(attempts, njobs, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = Int32GetDatum(MyProcPid);
	if (unclaim_plan == NULL)
	{
		Oid			argtypes[3] = {INT8ARRAYOID, INT4ARRAYOID, INT4OID};

		unclaim_plan = je_keep_plan(unclaim_sql, 3, argtypes);
	}
	rc = je_execute_plan(unclaim_plan, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "job_engine: giving claimed jobs back failed: %s", SPI_result_code_string(rc));
}

/*
 * job_engine_internal._claim(pid): the executor's claim as a function, for tests
 * that race claims against each other from ordinary sessions.
 */
PG_FUNCTION_INFO_V1(job_engine_claim);

static void
claim_to_tuplestore(HeapTuple tup, TupleDesc desc, uint64 index, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[JE_CLAIM_COLUMNS];
	bool		nulls[JE_CLAIM_COLUMNS];

	heap_deform_tuple(tup, desc, values, nulls);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

Datum
job_engine_claim(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		pid = PG_GETARG_INT32(0);

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	(void) je_deferred_release_guarded();
	(void) je_claim(pid, claim_to_tuplestore, rsinfo);
	SPI_finish();
	return (Datum) 0;
}

static char *
get_text(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *value = SPI_getvalue(tup, desc, col);

	return value ? pstrdup(value) : NULL;
}

static int64
get_int64(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, desc, col, isnull);

	return *isnull ? 0 : DatumGetInt64(d);
}

/* Copies the claimed row (see job_engine_internal._claim) into `job`, in the current context. */
static void
read_claimed_job(ExecutionContext *job, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	memset(job, 0, sizeof(*job));
	job->job_id = get_int64(tup, desc, 1, &isnull);
	job->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	job->fn = get_text(tup, desc, 3);
	job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	d = SPI_getbinval(tup, desc, 5, &isnull);
	job->timeout_ms = isnull ? je_default_timeout_ms : DatumGetInt32(d);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	job->args_jsonb = datumCopy(d, false, -1);
	job->handler = get_text(tup, desc, 7);
	job->queue = get_text(tup, desc, 8);
	job->correlation_id = get_text(tup, desc, 9);
	job->parent_job_id = get_int64(tup, desc, 10, &isnull);
	job->has_parent = !isnull;
	job->event_id = get_int64(tup, desc, 11, &isnull);
	job->has_event = !isnull;
	job->library = get_text(tup, desc, 12);
	job->symbol = get_text(tup, desc, 13);
}

/* Copies a claimed row into the claim buffer `arg`, in its memory context. */
static void
claim_to_buffer(HeapTuple tup, TupleDesc desc, uint64 index, void *arg)
{
	ClaimBuffer *buf = (ClaimBuffer *) arg;
	MemoryContext old;

	if (index >= JE_MAX_GROUP)
		return;
	if (index == 0)
		MemoryContextReset(buf->cxt);
	old = MemoryContextSwitchTo(buf->cxt);
	read_claimed_job(&buf->jobs[index], tup, desc);
	MemoryContextSwitchTo(old);
	buf->njobs = (int) index + 1;
}

/* A statement returning one number; NULL or no row: -1. */
static double
run_for_number(SPIPlanPtr *plan, const char *sql)
{
	bool		isnull;
	Datum		d;

	if (*plan == NULL)
		*plan = je_keep_plan(sql, 0, NULL);
	if (je_execute_plan(*plan, NULL, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return -1;
	return TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid == INT4OID
		? (double) DatumGetInt32(d) : DatumGetFloat8(d);
}

/* Jobs of job_engine._recheck decided per claim of an executor about to sleep. */
#define RECHECK_BATCH 64

/*
 * Runs the claim (one job, or a group of one queue) in the current
 * transaction and SPI connection, filling `buf`.  With due_in_ms (an
 * executor about to sleep), when nothing was claimed: decides again a
 * batch of the jobs noted in job_engine._recheck (held back at submit, or
 * left by a transition that found their row busy), and claims again if
 * any were; then *due_in_ms gets the time until the next delayed job (-1:
 * none), or 0 when more may be noted.
 */
static void
claim_in_xact(ClaimBuffer *buf, long *due_in_ms)
{
	static SPIPlanPtr recheck_plan = NULL;
	uint64		nclaimed;
	double		decided = 0;
	double		due;

	buf->njobs = 0;
	nclaimed = je_claim(MyProcPid, claim_to_buffer, buf);
	if (nclaimed == 0 && due_in_ms != NULL)
	{
		decided = run_for_number(&recheck_plan,
								 "SELECT _release_rechecks(" CppAsString2(RECHECK_BATCH) ")");
		if (decided > 0)
			nclaimed = je_claim(MyProcPid, claim_to_buffer, buf);
	}
	if (nclaimed > 0)
		je_executor_count_claims(nclaimed);
	else if (due_in_ms != NULL)
	{
		due = run_for_number(&due_plan, "SELECT _next_due_in()");
		if (due >= 0)
			*due_in_ms = (long) (due * 1000.0);
		if (decided >= RECHECK_BATCH)
			*due_in_ms = 0;
	}
}

/*
 * Claims in a transaction of its own, which commits (synchronously) before
 * any handler starts so that a crash is attributable: were the claim lost,
 * the attempt started on it would vanish instead of being recorded crashed.
 */
void
je_claim_next(ClaimBuffer *buf, long *due_in_ms)
{
	bool		keep;

	*due_in_ms = -1;
	/* In a transaction of its own: the claim's may be rolled back. */
	if (je_deferred_release_wanted())
	{
		je_worker_begin_xact("job_engine: releasing jobs now due");
		(void) je_deferred_release_guarded();
		je_worker_end_xact(true);
	}
	je_worker_begin_xact("job_engine: claiming");
	claim_in_xact(buf, due_in_ms);
	/*
	 * Another owner's jobs stay waiting, for a fresh executor
	 * (execution_context.c); so do all when the executor is stopping.
	 */
	keep = buf->njobs == 0 ||
		(!ProcDiePending && je_session_take(buf->jobs[0].owner));
	if (!keep)
		buf->njobs = 0;
	je_worker_end_xact(keep);
}

/*
 * Claims the next jobs inside the transaction recording an attempt, so the
 * claim rides on that commit.  A subtransaction keeps a failing claim from
 * failing the attempt, and is rolled back if the jobs are another owner's;
 * nothing is claimed while the executor is stopping or retiring.
 */
void
je_claim_chained(ClaimBuffer *next)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	next->njobs = 0;
	if (ProcDiePending || ConfigReloadPending || je_session_retiring() ||
		je_executor_yield_requested())
		return;

	/* Released jobs stay released whatever becomes of the claim. */
	(void) je_deferred_release_guarded();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		claim_in_xact(next, NULL);
		if (next->njobs == 0 || je_session_take(next->jobs[0].owner))
			ReleaseCurrentSubTransaction();
		else
		{
			next->njobs = 0;
			RollbackAndReleaseCurrentSubTransaction();
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		next->njobs = 0;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
}
