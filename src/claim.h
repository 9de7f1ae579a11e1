/*
 * claim.h
 *	  Claiming runnable jobs (claim.c).
 */
#ifndef JOB_ENGINE_CLAIM_H
#define JOB_ENGINE_CLAIM_H

#include "utils/memutils.h"

#include "execution_context.h"

/*
 * The columns of a claimed job, in SPI_tuptable after je_claim() and in
 * job_engine._claim()'s result: job_id, attempt, fn, owner, timeout_ms,
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

extern uint64 je_claim(int32 pid);
extern void je_claim_next(ClaimBuffer *buf, long *due_in_ms);
extern void je_claim_chained(ClaimBuffer *next);

#endif
