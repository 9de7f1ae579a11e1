/*
 * context.c
 *	  SQL functions that look at execution state: context(),
 *	  current_job_id(), the live workers of the workers view, and the
 *	  interrupt used by abort() of a running job.
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/json.h"

#include "execution.h"
#include "wakeup.h"
#include "shmem.h"

ClaimedJob	je_current_job;

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
	ClaimedJob *job = &je_current_job;
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
	if (!je_current_job.active)
		PG_RETURN_NULL();
	PG_RETURN_INT64(je_current_job.job_id);
}

PG_FUNCTION_INFO_V1(job_engine_workers);

/* One row per live executor, read from shared memory. */
Datum
job_engine_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (JobEngineShmem == NULL)
		PG_RETURN_VOID();

	n = JobEngineShmem->ndatabases * JobEngineShmem->workers_per_db;
	LWLockAcquire(JobEngineShmem->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		ExecutorSlot *slot = &JobEngineShmem->executors[i];
		Datum		values[6];
		bool		nulls[6] = {false};

		if (slot->state == EXECUTOR_FREE || slot->pid == 0)
			continue;
		values[0] = Int32GetDatum(slot->pid);
		values[1] = ObjectIdGetDatum(slot->dboid);
		values[2] = CStringGetTextDatum(je_executor_state_name(slot->state));
		values[3] = Int64GetDatum(slot->job_id);
		values[4] = Int32GetDatum(slot->attempt);
		values[5] = TimestampTzGetDatum(slot->since);
		nulls[3] = nulls[4] = (slot->state != EXECUTOR_BUSY);
		nulls[5] = (slot->since == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(JobEngineShmem->lock);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(job_engine_interrupt);

/*
 * Asks the executor running attempt (job_id, attempt) of this database to
 * stop, when the calling transaction commits (wakeup.c sends the signal):
 * abort() records the outcome in that transaction, and an abort that rolls
 * back must leave the attempt alone.  Returns whether such an executor is
 * running now.
 */
Datum
job_engine_interrupt(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	int32		attempt = PG_GETARG_INT32(1);

	je_interrupt_on_commit(job_id, attempt);
	PG_RETURN_BOOL(je_find_executor(MyDatabaseId, job_id, attempt) != NULL);
}

/*
 * Loads `symbol` of `library` as a native handler: the loader's error for a
 * missing file (58P01) or symbol (42883), and 42883 too for a symbol not
 * declared with JOB_ENGINE_HANDLER() or built for another API version.
 * Calling any other symbol as a handler would crash the executor.
 */
JobEngineHandler
je_load_native_handler(const char *library, const char *symbol)
{
	char	   *info_name = psprintf("%s%s", JOB_ENGINE_HANDLER_INFO_PREFIX, symbol);
	JobEngineHandlerInfoFunction info_fn;
	const JobEngineHandlerInfo *info;
	JobEngineHandler handler;

	handler = (JobEngineHandler) load_external_function(library, symbol, true, NULL);
	info_fn = (JobEngineHandlerInfoFunction) load_external_function(library, info_name, false, NULL);
	if (info_fn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("symbol \"%s\" of library \"%s\" is not a job_engine handler", symbol, library),
				 errdetail("The library has no function %s().", info_name),
				 errhint("Declare the handler with JOB_ENGINE_HANDLER(%s) from job_engine.h.", symbol)));
	info = info_fn();
	if (info == NULL || info->api_version != JOB_ENGINE_API_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler \"%s\" of library \"%s\" was built for job_engine handler API version %d, not %d",
						symbol, library, info ? info->api_version : 0, JOB_ENGINE_API_VERSION),
				 errhint("Rebuild the library against this version's job_engine.h.")));
	pfree(info_name);
	return handler;
}

PG_FUNCTION_INFO_V1(job_engine_check_c_symbol);


/*
 * Loads library and resolves symbol as a handler, so that
 * register_c_handler() fails at once on a typo or a symbol that is not one.
 */
Datum
job_engine_check_c_symbol(PG_FUNCTION_ARGS)
{
	char	   *library = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *symbol = text_to_cstring(PG_GETARG_TEXT_PP(1));

	(void) je_load_native_handler(library, symbol);
	PG_RETURN_VOID();
}
