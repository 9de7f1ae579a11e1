/*
 * execution_context.h
 *	  The ExecutionContext: what an executor knows about an attempt, from
 *	  its claim (claim.c) to its end (execution_context.c); and the
 *	  executor's session, which serves one owner for its whole life.
 *
 * Backend-local: context() and current_job_id() read the current one, so
 * they return NULL in any process that is not an executor inside an
 * attempt.
 */
#ifndef JOB_ENGINE_EXECUTION_CONTEXT_H
#define JOB_ENGINE_EXECUTION_CONTEXT_H

#include "utils/timestamp.h"

typedef struct ExecutionContext
{
	bool		active;			/* an attempt is running in this process */
	int64		job_id;
	int32		attempt;
	char	   *fn;				/* SQL handler's function signature, or NULL */
	char	   *library;		/* native handler (fn NULL) */
	char	   *symbol;
	Oid			owner;
	int32		timeout_ms;		/* 0: none */
	Datum		args_jsonb;
	char	   *handler;
	char	   *queue;
	char	   *correlation_id;
	bool		has_parent;
	int64		parent_job_id;
	bool		has_event;
	int64		event_id;
	TimestampTz deadline;		/* 0: none */
} ExecutionContext;

/* The attempt running in this process; .active is false between attempts. */
extern ExecutionContext je_current_context;

/* The executor's session: one owner per process (executor.c drives it). */
extern void je_session_before_connect(void);
extern void je_session_start(void);
extern bool je_session_take(Oid owner);
extern bool je_session_retiring(void);
extern const char *je_session_retire_reason(void);

/* An attempt: entering and leaving it, and what it may not leave behind. */
extern void je_begin_attempt(ExecutionContext *ctx);
extern void je_end_attempt(ExecutionContext *ctx);
extern void je_leave_context(void);
extern bool je_attempt_ends_group(void);
extern void je_apply_role_settings(Oid owner);

/* What je_become_owner() changed, for je_end_owner() to restore. */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} OwnerScope;

extern void je_become_owner(Oid owner, OwnerScope *scope);
extern void je_end_owner(OwnerScope *scope);
extern void je_close_attempt_xact_state(void);
extern void je_fire_deferred_triggers_as(Oid owner);
extern void je_reset_session_state(void);

#endif
