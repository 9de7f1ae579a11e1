/*
 * job_engine.h
 *	  Public C API of job_engine for native handlers.
 *
 * A native handler is a function of this signature in a shared library,
 * declared with JOB_ENGINE_HANDLER(symbol) and registered with
 * job_engine.register_c_handler(name, library, symbol).  It runs inside the
 * attempt's transaction, as the job's owner, and returns the job's result
 * or raises an error with ereport().
 *
 *	JOB_ENGINE_HANDLER(hello_handler);
 *	Jsonb *
 *	hello_handler(const JobEngineContext *ctx) { ... }
 *
 * The declaration also emits job_engine_hinfo_<symbol>(), which tells
 * job_engine that the symbol is a handler built against this API, as
 * PG_FUNCTION_INFO_V1 does for SQL-callable functions: any other symbol is
 * refused at registration and at run time instead of being called with the
 * wrong arguments.
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

typedef struct JobEngineHandlerInfo
{
	int			api_version;	/* JOB_ENGINE_API_VERSION the handler was built with */
} JobEngineHandlerInfo;

typedef const JobEngineHandlerInfo *(*JobEngineHandlerInfoFunction) (void);

#define JOB_ENGINE_HANDLER_INFO_PREFIX "job_engine_hinfo_"

#define JOB_ENGINE_HANDLER(funcname) \
extern PGDLLEXPORT const JobEngineHandlerInfo *job_engine_hinfo_##funcname(void); \
const JobEngineHandlerInfo * \
job_engine_hinfo_##funcname(void) \
{ \
	static const JobEngineHandlerInfo info = {JOB_ENGINE_API_VERSION}; \
	return &info; \
} \
extern PGDLLEXPORT Jsonb *funcname(const JobEngineContext *ctx)

#endif
