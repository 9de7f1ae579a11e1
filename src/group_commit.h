/*
 * group_commit.h
 *	  Several attempts of one queue in one transaction (group_commit.c).
 */
#ifndef JOB_ENGINE_GROUP_COMMIT_H
#define JOB_ENGINE_GROUP_COMMIT_H

#include "claim.h"
#include "execution_context.h"

extern void je_run_group(ExecutionContext *jobs, int njobs, ClaimBuffer *next);

#endif
