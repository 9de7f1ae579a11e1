/*
 * failure_log.h
 *	  The server log lines of failed attempts, bounded per database
 *	  (failure_log.c).
 */
#ifndef JOB_ENGINE_FAILURE_LOG_H
#define JOB_ENGINE_FAILURE_LOG_H

#include "execution_context.h"

extern void je_log_failed_attempt(ExecutionContext *job, ErrorData *edata, bool policy_failed);
extern void je_log_crashed_attempt(ExecutionContext *job, ErrorData *edata);
extern void je_flush_failure_log(void);

#endif
