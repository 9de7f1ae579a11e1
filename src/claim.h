/*
 * claim.h
 *	  Claiming runnable jobs (claim.c).
 */
#ifndef JOB_ENGINE_CLAIM_H
#define JOB_ENGINE_CLAIM_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/memutils.h"

#include "execution_context.h"

/*
 * The columns of a claimed job, as je_claim() hands them to its sink and in
 * job_engine_internal._claim()'s result: job_id, attempt, fn, owner, timeout_ms,
 * args, handler, queue, correlation_id, parent_job_id, event_id, library,
 * symbol.
 */
#define JE_CLAIM_COLUMNS 13

#define JE_MAX_GROUP 64

/*
 * Claimed jobs waiting to run, with the memory context their strings live
 * in.  The executor keeps two and alternates: the next jobs are claimed
 * into one while the other's attempt is still being recorded.
 */
typedef struct ClaimBuffer
{
	ExecutionContext jobs[JE_MAX_GROUP];
	int			njobs;
	MemoryContext cxt;
} ClaimBuffer;

/* Receives the claimed rows, numbered from 0, one by one. */
typedef void (*JeClaimSink) (HeapTuple tup, TupleDesc desc, uint64 index, void *arg);

extern uint64 je_claim(int32 pid, JeClaimSink sink, void *arg);
extern void je_claim_next(ClaimBuffer *buf, long *due_in_ms);
extern void je_claim_chained(ClaimBuffer *next);
extern void je_unclaim(ExecutionContext *jobs, int njobs);

#endif
