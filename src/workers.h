/*
 * workers.h
 *	  Entry points of job_engine's background workers.
 *
 *	  launcher (static, one per cluster)
 *	    └─ supervisor (dynamic, one per database in job_engine.databases)
 *	         └─ executor (dynamic, job_engine.max_workers per database)
 */
#ifndef JOB_ENGINE_WORKERS_H
#define JOB_ENGINE_WORKERS_H

#include "postmaster/bgworker.h"

extern void je_register_launcher(void);

extern PGDLLEXPORT void job_engine_launcher_main(Datum arg);
extern PGDLLEXPORT void job_engine_supervisor_main(Datum arg);
extern PGDLLEXPORT void job_engine_executor_main(Datum arg);

/* Shared between workers. */
extern bool je_extension_installed(void);
extern void je_worker_handle_signals(void);
extern void je_worker_process_reload(void);

#endif
