/*
 * recovery.h
 *	  The supervisor's recovery of crashed attempts (recovery.c).
 */
#ifndef JOB_ENGINE_RECOVERY_H
#define JOB_ENGINE_RECOVERY_H

#include "utils/timestamp.h"

/*
 * An executor the supervisor terminated: the attempt it did so for, and
 * why (it ignored its abort, or ran past its deadline).
 */
typedef struct JeTermination
{
	pid_t		pid;			/* 0: none */
	int64		job_id;
	int32		attempt;
	bool		past_deadline;	/* else it ignored its abort */
	TimestampTz deadline;
} JeTermination;

extern void je_recover_crashed(int *pids, int npids, const char *dbname);
extern void je_recover_terminated(const JeTermination *ended, const char *dbname);
extern void je_recover_orphans(const char *dbname);

#endif
