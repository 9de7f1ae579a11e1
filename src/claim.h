/*
 * claim.h
 *	  Claiming runnable jobs (claim.c).
 */
#ifndef JOB_ENGINE_CLAIM_H
#define JOB_ENGINE_CLAIM_H

/*
 * The columns of a claimed job, in SPI_tuptable after je_claim() and in
 * job_engine._claim()'s result: job_id, attempt, fn, owner, timeout_ms,
 * args, handler, queue, correlation_id, parent_job_id, event_id, library,
 * symbol.
 */
#define JE_CLAIM_COLUMNS 13

extern uint64 je_claim(int32 pid);

#endif
