/*
 * worker.h
 *	  What job_engine's background workers share (worker.c): signals,
 *	  configuration reload, the extension check and the worker's
 *	  transaction.
 *
 *	  launcher (static, one per cluster; launcher.c)
 *	    └─ supervisor (dynamic, one per database in job_engine.databases; supervisor.c)
 *	         └─ executor (dynamic, job_engine.max_workers per database; executor.c)
 */
#ifndef JOB_ENGINE_WORKER_H
#define JOB_ENGINE_WORKER_H

#include "executor/spi.h"

/* The longest log line queued for a commit (je_worker_log_at_commit), bytes. */
#define JE_LOG_LINE_MAX 8192

/* How often a lack of background worker slots is said while it lasts. */
#define JE_SHORTAGE_WARNING_INTERVAL_MS (60 * 1000)

extern void je_worker_handle_signals(void);
extern void je_worker_interruptible(bool on);
extern void je_worker_exit_if_stopping(void);
extern void je_worker_process_reload(void);
extern bool je_extension_installed(void);
extern bool je_worker_unless_dropped(void (*fn) (void *arg), void *arg);

extern void je_worker_begin_xact(const char *activity);
extern void je_worker_end_xact(bool commit);
extern uint64 je_worker_run_statement(const char *activity, SPIPlanPtr *plan,
									  const char *sql, int nargs, Oid *argtypes,
									  Datum *values);
extern void je_worker_defer_notifications(void);
extern void je_worker_notify(const char *channel, const char *payload);
extern void je_worker_send_notifications(void);
extern void je_worker_log_at_commit(int elevel, const char *line);
extern ErrorData *je_take_error(MemoryContext cxt);
extern ErrorData *je_in_subtransaction(void (*fn) (void *arg), void *arg);

#endif
