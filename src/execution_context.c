/*
 * execution_context.c
 *	  The ExecutionContext of the running attempt: entering and leaving it
 *	  (with the reset of session state between attempts), and the SQL
 *	  functions that read it, context() and current_job_id().
 */
#include "postgres.h"

#include "commands/prepare.h"
#include "commands/sequence.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "execution_context.h"
#include "shmem.h"

ExecutionContext je_current_context;

/* Marks the attempt as started: shared memory, context(), deadline. */
void
je_begin_attempt(ExecutionContext *job)
{
	je_executor_set_state(EXECUTOR_BUSY, job->job_id, job->attempt);
	job->active = true;
	job->deadline = job->timeout_ms > 0
		? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), job->timeout_ms) : 0;
	je_current_context = *job;
}

/*
 * Undoes what an attempt may have left in the session outside its
 * transaction: session-level advisory locks, prepared statements, sequence
 * caches.  Settings were undone by the GUC nest level, and temporary
 * objects, LISTEN and role changes are refused in a security-restricted
 * operation.
 */
void
je_reset_session_state(void)
{
	LockReleaseSession(USER_LOCKMETHOD);
	DropAllPreparedStatements();
	ResetSequenceCaches();
}

/*
 * Leaves the current attempt's context: nothing of it may reach the next
 * attempt (of a group, say).
 */
void
je_leave_context(void)
{
	je_reset_session_state();
	je_current_context.active = false;
}

/* Undoes je_begin_attempt and whatever the attempt left in the session. */
void
je_end_attempt(ExecutionContext *job)
{
	je_leave_context();
	job->active = false;
	je_executor_set_state(EXECUTOR_IDLE, 0, 0);
	/* A cancel aimed at the finished attempt must not hit the next one. */
	QueryCancelPending = false;
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
append_json_field(StringInfo buf, const char *key, const char *value, bool quoted)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else if (quoted)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, value);
}

PG_FUNCTION_INFO_V1(job_engine_context);

/* The running attempt's ExecutionContext as jsonb, NULL outside a job. */
Datum
job_engine_context(PG_FUNCTION_ARGS)
{
	ExecutionContext *job = &je_current_context;
	StringInfoData buf;
	char	   *owner;

	if (!job->active)
		PG_RETURN_NULL();

	owner = GetUserNameFromId(job->owner, true);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_json_field(&buf, "job_id", psprintf(INT64_FORMAT, job->job_id), false);
	append_json_field(&buf, "attempt", psprintf("%d", job->attempt), false);
	append_json_field(&buf, "handler", job->handler, true);
	append_json_field(&buf, "queue", job->queue, true);
	append_json_field(&buf, "correlation_id", job->correlation_id, true);
	append_json_field(&buf, "parent_job_id",
					  job->has_parent ? psprintf(INT64_FORMAT, job->parent_job_id) : NULL, false);
	append_json_field(&buf, "event_id",
					  job->has_event ? psprintf(INT64_FORMAT, job->event_id) : NULL, false);
	append_json_field(&buf, "owner", owner, true);
	append_json_field(&buf, "deadline",
					  job->deadline ? timestamptz_to_str(job->deadline) : NULL, true);
	appendStringInfoChar(&buf, '}');

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(job_engine_current_job_id);

Datum
job_engine_current_job_id(PG_FUNCTION_ARGS)
{
	if (!je_current_context.active)
		PG_RETURN_NULL();
	PG_RETURN_INT64(je_current_context.job_id);
}
