/*
 * settings.h
 *	  The job_engine.* configuration parameters.
 */
#ifndef JOB_ENGINE_SETTINGS_H
#define JOB_ENGINE_SETTINGS_H

#include "nodes/pg_list.h"

extern char *je_databases;
extern int	je_max_workers;
extern int	je_poll_interval_ms;
extern int	je_default_timeout_ms;
extern bool je_notify;
extern int	je_retention_s;
extern int	je_vacuum_after;
extern int	je_rebuild_max_rows;
extern int	je_failure_log_level;
extern int	je_failure_log_limit;
extern bool je_allow_superuser_jobs;
extern int	je_abort_grace_ms;

extern void je_define_settings(void);
extern List *je_database_list(void);
extern int	je_database_count(void);
extern bool je_serves_database(const char *dbname);

#endif
