/*
 * metrics.h
 *	  Monotonic counters of job transitions, per database and owner, in
 *	  shared memory (docs/monitoring.md, "Counters").
 */
#ifndef JOB_ENGINE_METRICS_H
#define JOB_ENGINE_METRICS_H

#include "utils/timestamp.h"

/* What a job's transition counts for. */
typedef enum JeCounter
{
	JC_JOBS_CREATED = 0,
	JC_JOBS_SUCCEEDED,
	JC_JOBS_FAILED,
	JC_JOBS_ABORTED,
	JC_ATTEMPTS_SUCCEEDED,
	JC_ATTEMPTS_FAILED,
	JC_ATTEMPTS_ABORTED,
	JC_ATTEMPTS_CRASHED,
	JC_DURATION_US,				/* sum of finished jobs' durations, microseconds */
	JC_DURATION_COUNT,			/* jobs that ran and finished */
	JC_NCOUNTERS
} JeCounter;

extern void je_metrics_install_hooks(void);
extern void je_metrics_count(Oid owner, JeCounter counter, int64 delta);
extern void je_metrics_count_finished(Oid owner, JeCounter counter,
									  TimestampTz started_at, TimestampTz finished_at);
extern void je_metrics_failures_are_crashes(void);
extern bool je_metrics_crash_recording(void);

#endif
