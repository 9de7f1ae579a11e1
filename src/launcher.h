/*
 * launcher.h
 *	  The cluster-wide launcher (launcher.c).
 */
#ifndef JOB_ENGINE_LAUNCHER_H
#define JOB_ENGINE_LAUNCHER_H

#include "postgres.h"

extern void je_register_launcher(void);
extern PGDLLEXPORT void job_engine_launcher_main(Datum arg);

#endif
