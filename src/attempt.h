/*
 * attempt.h
 *	  Running one attempt of a claimed job (attempt.c).
 */
#ifndef JOB_ENGINE_ATTEMPT_H
#define JOB_ENGINE_ATTEMPT_H

#include "claim.h"
#include "execution_context.h"

extern void je_run_attempt(ExecutionContext *job, ClaimBuffer *next);
extern Datum je_run_handler(ExecutionContext *job, bool *isnull);
extern void je_leave_handler(void);
extern void je_report_activity(ExecutionContext *job);

#endif
