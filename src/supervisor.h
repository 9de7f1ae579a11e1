/*
 * supervisor.h
 *	  The per-database supervisor (supervisor.c).
 */
#ifndef JOB_ENGINE_SUPERVISOR_H
#define JOB_ENGINE_SUPERVISOR_H

#include "postgres.h"

extern PGDLLEXPORT void job_engine_supervisor_main(Datum arg);

#endif
