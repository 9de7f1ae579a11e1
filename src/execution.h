/*
 * execution.h
 *	  What an executor knows about the attempt it is running.  Backend-local:
 *	  context() and current_job_id() read it, so they return NULL in any
 *	  process that is not an executor inside an attempt.
 */
#ifndef JOB_ENGINE_EXECUTION_H
#define JOB_ENGINE_EXECUTION_H

#include "executor/spi.h"
#include "utils/timestamp.h"

#include "job_engine.h"

typedef struct ClaimedJob
{
	bool		active;			/* an attempt is running in this process */
	int64		job_id;
	int32		attempt;
	Oid			fn_oid;			/* SQL handler function, or InvalidOid */
	char	   *library;		/* native handler (fn_oid invalid) */
	char	   *symbol;
	Oid			owner;
	int32		timeout_ms;		/* 0: none */
	Datum		args_jsonb;
	char	   *handler;
	char	   *queue;
	char	   *correlation_id;
	bool		has_parent;
	int64		parent_job_id;
	bool		has_event;
	int64		event_id;
	TimestampTz deadline;		/* 0: none */
} ClaimedJob;

extern ClaimedJob je_current_job;

#define JE_MAX_GROUP 64

/*
 * Claimed jobs waiting to run, with the memory context their strings live
 * in.  The executor keeps two and alternates: the next jobs are claimed
 * into one while the other's attempt is still being recorded.
 */
typedef struct ClaimBuffer
{
	ClaimedJob	jobs[JE_MAX_GROUP];
	int			njobs;
	MemoryContext cxt;
} ClaimBuffer;

/* executor.c */
extern void je_claim_chained(ClaimBuffer *next);


/* attempt.c: one attempt, one transaction */
extern void je_run_attempt(ClaimedJob *job, ClaimBuffer *next);
extern void je_begin_attempt(ClaimedJob *job);
extern void je_end_attempt(ClaimedJob *job);
extern Datum je_run_handler(ClaimedJob *job, bool *isnull);
extern void je_record_failure_in_xact(ClaimedJob *job, ErrorData *edata);
extern void je_record_failure(ClaimedJob *job, ErrorData *edata, ClaimBuffer *next);
extern void je_log_failure(ClaimedJob *job, ErrorData *edata);
extern ErrorData *je_unrecordable_outcome(void);
extern ErrorData *je_take_error(MemoryContext cxt);
extern void je_reset_session_state(void);
extern void je_report_activity(ClaimedJob *job);

/* context.c */
extern JobEngineHandler je_load_native_handler(const char *library, const char *symbol);

/* group_commit.c: several attempts, one transaction */
extern void je_run_group(ClaimedJob *jobs, int njobs, ClaimBuffer *next);

/* executor.c */
#include "shmem.h"
extern void je_executor_set_state(ExecutorState state, int64 job_id, int32 attempt);
extern bool je_executor_abort_requested(void);

#endif
