/*
 * executor.h
 *	  The executor (executor.c).
 */
#ifndef JOB_ENGINE_EXECUTOR_H
#define JOB_ENGINE_EXECUTOR_H

#include "postgres.h"

extern PGDLLEXPORT void job_engine_executor_main(Datum arg);

#endif
