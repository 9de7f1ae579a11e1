/*
 * job_engine.h
 *	  Public C API of job_engine for native handlers.
 *
 * A native handler is a function of this signature in a shared library,
 * registered with job_engine.register_c_handler(name, library, symbol).  It
 * runs inside the attempt's transaction, as the job's owner, and returns
 * the job's result or raises an error with ereport().
 */
#ifndef JOB_ENGINE_H
#define JOB_ENGINE_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define JOB_ENGINE_API_VERSION 1

typedef struct JobEngineContext
{
	int			api_version;	/* JOB_ENGINE_API_VERSION */
	int64		job_id;
	int32		attempt;		/* 1 for the first attempt */
	const char *handler;
	const char *queue;
	const char *correlation_id; /* canonical uuid text */
	Jsonb	   *args;
	TimestampTz deadline;		/* 0: no deadline */
	/* True once the attempt should stop (abort, timeout, shutdown). */
	bool		(*cancel_requested) (void);
} JobEngineContext;

/* Return NULL for a NULL result. */
typedef Jsonb *(*JobEngineHandler) (const JobEngineContext *ctx);

#endif
