/*
 * attempt.c
 *	  Runs one attempt of a claimed job: its ExecutionContext.
 *
 * The attempt is one transaction.  Inside it the handler runs as the job's
 * owner in a security-restricted context, under a GUC nest level (so any
 * setting it changes is undone), with the handler's timeout armed as the
 * statement timeout.  On success the outcome is recorded in the same
 * transaction as the handler's work, so both commit or neither does.  On
 * error the ErrorData is copied, the transaction rolled back, and a new
 * short transaction records the failure and applies the retry policy.
 *
 * Every record is fenced by (job state, attempt number) in SQL, so an
 * abort() or crash recovery that got there first wins and this attempt's
 * outcome is discarded, never written twice.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "compat.h"
#include "execution.h"
#include "internal_sql.h"
#include "job_engine.h"
#include "outcome.h"
#include "settings.h"
#include "shmem.h"

static SPIPlanPtr failure_plan = NULL;

/* Converts a handler's result to jsonb, as to_jsonb() would. */
static Datum
result_to_jsonb(Oid rettype, Datum value, bool *isnull)
{
	FmgrInfo	flinfo;
	Node	   *expr;

	if (*isnull || rettype == VOIDOID)
	{
		*isnull = true;
		return (Datum) 0;
	}
	if (rettype == JSONBOID)
		return value;

	fmgr_info(F_TO_JSONB, &flinfo);
	expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
								 list_make1(makeNullConst(rettype, -1, InvalidOid)),
								 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	fmgr_info_set_expr(expr, &flinfo);
	return FunctionCall1(&flinfo, value);
}

static bool
native_cancel_requested(void)
{
	return QueryCancelPending || ProcDiePending;
}

/*
 * Calls a native handler (job_engine.h) with the attempt's
 * ExecutionContext.  The symbol was checked at registration; it is looked up
 * again here because the library may have changed since.
 */
static Datum
call_native_handler(ClaimedJob *job, bool *isnull)
{
	JobEngineHandler handler;
	JobEngineContext ctx;
	Jsonb	   *result;

	if (job->library == NULL || job->symbol == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler \"%s\" has neither a function nor a native symbol", job->handler),
				 errhint("Register the handler again.")));

	handler = je_load_native_handler(job->library, job->symbol);
	memset(&ctx, 0, sizeof(ctx));
	ctx.api_version = JOB_ENGINE_API_VERSION;
	ctx.job_id = job->job_id;
	ctx.attempt = job->attempt;
	ctx.handler = job->handler;
	ctx.queue = job->queue;
	ctx.correlation_id = job->correlation_id;
	ctx.args = DatumGetJsonbP(job->args_jsonb);
	ctx.deadline = job->deadline;
	ctx.cancel_requested = native_cancel_requested;

	result = handler(&ctx);
	*isnull = (result == NULL);
	return PointerGetDatum(result);
}

/*
 * Calls the handler function with the job's args, as the current user
 * (already the job's owner).  EXECUTE is checked here, at run time, as well
 * as at submit.
 */
static Datum
call_handler(ClaimedJob *job, bool *isnull)
{
	FmgrInfo	flinfo;
	AclResult	aclresult;
	Datum		result;
	Oid			rettype;

	LOCAL_FCINFO(fcinfo, 1);

	if (!OidIsValid(job->fn_oid))
		return call_native_handler(job, isnull);
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(job->fn_oid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function of handler \"%s\" no longer exists", job->handler),
				 errhint("Register the handler again with an existing function.")));
	/* See a GRANT or REVOKE that committed while the job was being claimed. */
	AcceptInvalidationMessages();
	aclresult = je_proc_aclcheck(job->fn_oid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(job->fn_oid));
	InvokeFunctionExecuteHook(job->fn_oid);

	fmgr_info(job->fn_oid, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = job->args_jsonb;
	fcinfo->args[0].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;

	rettype = get_func_rettype(job->fn_oid);
	return result_to_jsonb(rettype, result, isnull);
}

/*
 * Runs the handler as the job's owner and returns its jsonb result.  The
 * user switch and GUC nest level are undone here on success and by
 * transaction abort on error.
 */
Datum
je_run_handler(ClaimedJob *job, bool *isnull)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Datum		result;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role %u owning job " INT64_FORMAT " no longer exists",
						job->owner, job->job_id),
				 errhint("Resubmit the job as an existing role.")));
	if (!je_allow_superuser_jobs && superuser_arg(job->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("job " INT64_FORMAT " is owned by a superuser, which job_engine.allow_superuser_jobs forbids",
						job->job_id),
				 errhint("Resubmit the job as an ordinary role.")));

	save_nestlevel = NewGUCNestLevel();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(job->owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (job->timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, job->timeout_ms);

	result = call_handler(job, isnull);

	if (job->timeout_ms > 0)
		disable_timeout(STATEMENT_TIMEOUT, false);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	AtEOXact_GUC(false, save_nestlevel);
	return result;
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * Records a failed attempt and applies the retry policy, inside the current
 * transaction and SPI connection.
 */
void
je_record_failure_in_xact(ClaimedJob *job, ErrorData *edata)
{
	Datum		values[8];
	char		nulls[8];
	int			rc;

	if (failure_plan == NULL)
	{
		Oid			argtypes[8] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID};

		failure_plan = je_keep_plan("SELECT job_engine._record_failure($1, $2, "
									"$3::job_engine.attempt_outcome, $4, $5, $6, $7, $8)",
									8, argtypes);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(job->job_id);
	values[1] = Int32GetDatum(job->attempt);
	values[2] = CStringGetTextDatum("failed");
	values[3] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[4] = text_or_null(edata->message, &nulls[4]);
	values[5] = text_or_null(edata->detail, &nulls[5]);
	values[6] = text_or_null(edata->hint, &nulls[6]);
	values[7] = text_or_null(edata->context, &nulls[7]);
	rc = SPI_execute_plan(failure_plan, values, nulls, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "job_engine: recording failure failed: %s", SPI_result_code_string(rc));
}

/* Logs a failed attempt at job_engine.log_failures. */
void
je_log_failure(ClaimedJob *job, ErrorData *edata)
{
	bool		aborted = je_executor_abort_requested();

	if (je_failure_log_level == 0)
		return;
	ereport(je_failure_log_level,
			(errmsg("job_engine: job " INT64_FORMAT " (handler %s) attempt %d %s: SQLSTATE %s: %s",
					job->job_id, job->handler, job->attempt,
					aborted ? "aborted" : "failed",
					unpack_sql_state(edata->sqlerrcode), edata->message)));
}

/*
 * Records a failed attempt in a transaction of its own, claiming the next
 * jobs into `next` in the same transaction when it is not NULL.
 */
void
je_record_failure(ClaimedJob *job, ErrorData *edata, ClaimBuffer *next)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "job_engine: recording failure");
	je_record_failure_in_xact(job, edata);
	if (next != NULL)
		je_claim_chained(next);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
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

void
je_report_activity(ClaimedJob *job)
{
	char		activity[256];

	snprintf(activity, sizeof(activity),
			 "job_engine: job " INT64_FORMAT " attempt %d handler %s",
			 job->job_id, job->attempt, job->handler);
	pgstat_report_activity(STATE_RUNNING, activity);
}

/*
 * Runs one attempt in its own transaction.  When it succeeds, the claim of
 * the executor's next jobs is made in the same transaction (into `next`),
 * saving a commit per job: the next claim still commits before its handler
 * starts.
 */
void
je_run_attempt(ClaimedJob *job, ClaimBuffer *next)
{
	MemoryContext outer_cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;
	volatile bool fenced = false;

	next->njobs = 0;
	je_begin_attempt(job);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		Datum		result;
		bool		isnull;

		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		je_report_activity(job);

		result = je_run_handler(job, &isnull);
		if (je_record_success_in_xact(job->job_id, job->attempt, result, isnull))
		{
			je_claim_chained(next);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		else
		{
			/*
			 * Aborted or recovered meanwhile: the handler's work is void.  If
			 * the change came from this very transaction (the handler
			 * aborted its own job), rolling back undoes it too, so the job
			 * is checked again below.
			 */
			SPI_finish();
			PopActiveSnapshot();
			AbortCurrentTransaction();
			fenced = true;
		}
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		edata = je_take_error(outer_cxt);
		AbortCurrentTransaction();
		next->njobs = 0;		/* a chained claim rolled back with it */
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		je_log_failure(job, edata);
		je_record_failure(job, edata, next);
		FreeErrorData(edata);
	}
	else if (fenced)
		je_record_failure(job, je_unrecordable_outcome(), NULL);

	je_end_attempt(job);
}

/* In a PG_CATCH: the error, copied into `cxt`, and the error state cleared. */
ErrorData *
je_take_error(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	return edata;
}

/*
 * The error recorded when an attempt's success could not be recorded
 * because its job left the running state inside the attempt itself.  The
 * record is fenced like any other: if an abort or recovery really got
 * there first, nothing is written.
 */
ErrorData *
je_unrecordable_outcome(void)
{
	static ErrorData edata;

	memset(&edata, 0, sizeof(edata));
	edata.elevel = ERROR;
	edata.sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
	edata.message = "the attempt changed the state of its own job";
	edata.hint = "A handler cannot abort or finish its own job; raise an error to fail the attempt.";
	return &edata;
}

/* Marks the attempt as started: shared memory, context(), deadline. */
void
je_begin_attempt(ClaimedJob *job)
{
	je_executor_set_state(EXECUTOR_BUSY, job->job_id, job->attempt);
	job->active = true;
	job->deadline = job->timeout_ms > 0
		? TimestampTzPlusMilliseconds(GetCurrentTimestamp(), job->timeout_ms) : 0;
	je_current_job = *job;
}

/* Undoes je_begin_attempt and whatever the attempt left in the session. */
void
je_end_attempt(ClaimedJob *job)
{
	je_reset_session_state();
	je_current_job.active = false;
	job->active = false;
	je_executor_set_state(EXECUTOR_IDLE, 0, 0);
	/* A cancel aimed at the finished attempt must not hit the next one. */
	QueryCancelPending = false;
	pgstat_report_activity(STATE_IDLE, NULL);
}
