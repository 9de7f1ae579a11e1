/*
 * outcome.h
 *	  Recording successes and failures, and notifying transitions
 *	  (outcome.c).
 */
#ifndef JOB_ENGINE_OUTCOME_H
#define JOB_ENGINE_OUTCOME_H

#include "claim.h"
#include "execution_context.h"

extern bool je_record_success_in_xact(int64 job_id, int32 attempt,
									  Datum result, bool result_isnull);
extern uint64 je_record_successes_in_xact(int64 *ids, int32 *attempts,
										  Datum *results, bool *nulls, int n);
extern void je_record_failure_in_xact(ExecutionContext *job, ErrorData *edata);
extern bool je_attempt_still_running(int64 job_id, int32 attempt);
extern void je_record_failure(ExecutionContext *job, ErrorData *edata, ClaimBuffer *next);
extern ErrorData *je_unrecordable_outcome(void);
extern void je_notify_transition(int64 job_id, const char *state, const char *handler,
								 const char *queue, int32 attempt,
								 const char *correlation_id);

#endif
