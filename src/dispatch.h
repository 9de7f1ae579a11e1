/*
 * dispatch.h
 *	  Claim low-water marks per queue, in shared memory (dispatch.c).
 */
#ifndef JOB_ENGINE_DISPATCH_H
#define JOB_ENGINE_DISPATCH_H

#include "access/xact.h"
#include "utils/timestamp.h"

/* A position in jobs_claim_idx within one queue: (priority, run_at, id). */
typedef struct JeDispatchKey
{
	int32		priority;
	TimestampTz run_at;
	int64		id;
} JeDispatchKey;

/*
 * The marks a claim descends from, read in one go: `seq` is the ring's
 * sequence number when they were read, to be handed back with what the
 * claim found (je_dispatch_advance).  Names and keys are palloc'd.  With
 * `overflow`, the queues not listed are found by JE_GAP_WALK.
 */
typedef struct JeDispatchMarks
{
	uint64		seq;
	bool		overflow;		/* queues not listed may have candidates */
	int			n;
	char	  **names;
	JeDispatchKey *keys;
} JeDispatchMarks;

/* A candidate of jobs_claim_idx, and one that is due. */
#define JE_CANDIDATE "j.state IN ('created', 'retrying') AND j.blocked IS NULL"
#define JE_DUE " AND j.run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
#define JE_WALK_COLS "j.queue, j.priority, j.run_at, j.id, j.owner, j.ordering_key, j.depends_on"
#define JE_WALK_NEXT " ORDER BY j.queue, j.priority, j.run_at, j.id LIMIT 1"

/*
 * CTEs of a walk, from queue to queue through jobs_claim_idx, of the queues
 * not named in LISTED (a text[] parameter, not empty), ending in u: each
 * such queue's first candidate (only due ones with DUE = JE_DUE), with the
 * columns of JE_WALK_COLS.  It never enters a listed queue's range, whose
 * start may hold the index entries of every job claimed since the oldest
 * snapshot: it walks the gaps between the listed names (g, then h: each
 * bounded above by the next listed name, where the index scan stops) and
 * the tail after the last one (t).  For a table of marks that overflows.
 */
#define JE_GAP_WALK(LISTED, DUE) \
" l AS (SELECT n, pg_catalog.row_number() OVER (ORDER BY n) AS r" \
"         FROM pg_catalog.unnest(" LISTED "::pg_catalog.text[]) n)," \
" g AS (SELECT a.n AS lo, b.n AS hi FROM l a JOIN l b" \
"           ON b.r OPERATOR(pg_catalog.=) (a.r OPERATOR(pg_catalog.+) 1))," \
" h AS (" \
"    (SELECT " JE_WALK_COLS ", (SELECT pg_catalog.min(l.n) FROM l) AS hi" \
"       FROM job_engine._jobs j WHERE " JE_CANDIDATE DUE \
"        AND j.queue OPERATOR(pg_catalog.<) (SELECT pg_catalog.min(l.n) FROM l)" \
       JE_WALK_NEXT ")" \
"    UNION ALL" \
"    SELECT x.* FROM g CROSS JOIN LATERAL (" \
"        SELECT " JE_WALK_COLS ", g.hi FROM job_engine._jobs j WHERE " JE_CANDIDATE DUE \
"           AND j.queue OPERATOR(pg_catalog.>) g.lo AND j.queue OPERATOR(pg_catalog.<) g.hi" \
           JE_WALK_NEXT ") x" \
"    UNION ALL" \
"    SELECT x.* FROM h CROSS JOIN LATERAL (" \
"        SELECT " JE_WALK_COLS ", h.hi FROM job_engine._jobs j WHERE " JE_CANDIDATE DUE \
"           AND j.queue OPERATOR(pg_catalog.>) h.queue AND j.queue OPERATOR(pg_catalog.<) h.hi" \
           JE_WALK_NEXT ") x)," \
" t AS (" \
"    (SELECT " JE_WALK_COLS " FROM job_engine._jobs j WHERE " JE_CANDIDATE DUE \
"        AND j.queue OPERATOR(pg_catalog.>) (SELECT pg_catalog.max(l.n) FROM l)" \
       JE_WALK_NEXT ")" \
"    UNION ALL" \
"    SELECT x.* FROM t CROSS JOIN LATERAL (" \
"        SELECT " JE_WALK_COLS " FROM job_engine._jobs j WHERE " JE_CANDIDATE DUE \
"           AND j.queue OPERATOR(pg_catalog.>) t.queue" JE_WALK_NEXT ") x)," \
" u AS (SELECT h.queue, h.priority, h.run_at, h.id, h.owner, h.ordering_key, h.depends_on" \
"         FROM h UNION ALL SELECT * FROM t)"

extern int	je_dispatch_key_cmp(const JeDispatchKey *a, const JeDispatchKey *b);
extern Size je_dispatch_shmem_size(int ndatabases);
extern void je_dispatch_shmem_init(void *base, int ndatabases, bool init);
extern void je_dispatch_request_locks(int ndatabases);
extern void je_dispatch_attach(int dbindex);
extern void je_dispatch_xact_event(XactEvent event);
extern void je_dispatch_subxact_event(SubXactEvent event);
extern void je_dispatch_note_candidate(const char *name, int len, const JeDispatchKey *key);
extern bool je_dispatch_read(JeDispatchMarks *marks);
extern void je_dispatch_advance(uint64 seq, int n, char **names, JeDispatchKey *first,
								bool *empty);
extern void je_dispatch_reset_at_commit(void);
extern void je_dispatch_note_deferred(TimestampTz run_at);
extern bool je_dispatch_deferred_due(TimestampTz now, uint64 *gen, TimestampTz *upto);
extern bool je_dispatch_deferred_sweep(TimestampTz now, int interval_ms, bool take);
extern void je_dispatch_deferred_found(uint64 gen, TimestampTz next, TimestampTz upto);
extern bool je_dispatch_rows_noted(void);
extern void je_dispatch_rebuild(void);

#endif
