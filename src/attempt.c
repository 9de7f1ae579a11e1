/*
 * attempt.c
 *	  Runs one attempt of a claimed job, given its ExecutionContext: the
 *	  handler as the job's owner, then its outcome recorded (outcome.c).
 *
 * The attempt is one transaction.  Inside it the handler runs as the job's
 * owner (also the executor's session user: execution_context.c) in a local
 * user-id change, which refuses SET ROLE and SET SESSION AUTHORIZATION,
 * under a GUC nest level holding the owner's role settings (so they and any
 * setting the handler changes are undone), with the handler's timeout armed
 * as the statement timeout.  On success the outcome is recorded in the same
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
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "attempt.h"
#include "claim.h"
#include "compat.h"
#include "execution_context.h"
#include "handler_function.h"
#include "native_handler.h"
#include "outcome.h"
#include "settings.h"
#include "shmem.h"
#include "worker.h"

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

/*
 * Calls the handler function with the job's args, as the current user
 * (already the job's owner).  The function is looked up by its signature
 * now, and USAGE on its schema and EXECUTE are checked now, as well as at
 * submit: the owner may run the job only if it could call the function by
 * that name in a session of its own.
 */
static Datum
call_handler(ExecutionContext *job, bool *isnull)
{
	FmgrInfo	flinfo;
	AclResult	aclresult;
	Datum		result;
	Oid			fn_oid;
	Oid			rettype;

	LOCAL_FCINFO(fcinfo, 1);

	if (job->fn == NULL)
		return je_call_native_handler(job, isnull);
	/* See a DROP, CREATE, GRANT or REVOKE that committed during the claim. */
	AcceptInvalidationMessages();
	fn_oid = je_resolve_handler_function(job->fn);
	if (!OidIsValid(fn_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s of handler \"%s\" does not exist",
						job->fn, job->handler),
				 errhint("Create the function again with this signature, or register the handler with an existing function.")));
	aclresult = je_namespace_aclcheck(get_func_namespace(fn_oid), GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_SCHEMA, get_namespace_name(get_func_namespace(fn_oid)));
	aclresult = je_proc_aclcheck(fn_oid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(fn_oid));
	InvokeFunctionExecuteHook(fn_oid);

	/* Before the call: the handler may drop its own function. */
	rettype = get_func_rettype(fn_oid);
	fmgr_info(fn_oid, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = job->args_jsonb;
	fcinfo->args[0].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;

	return result_to_jsonb(rettype, result, isnull);
}

/*
 * Runs the handler as the job's owner and returns its jsonb result.  The
 * user switch and GUC nest level are undone here on success and by
 * transaction abort on error.
 *
 * No security-restricted operation: it would refuse what a session of the
 * owner may do (temporary tables, REFRESH MATERIALIZED VIEW CONCURRENTLY,
 * WITH HOLD cursors, LISTEN, PREPARE, deferred triggers).  What those leave
 * behind is undone at the end of the attempt instead (execution_context.c),
 * and the process never serves another owner.
 */
Datum
je_run_handler(ExecutionContext *job, bool *isnull)
{
	OwnerScope	scope;
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

	if (job->owner != GetSessionUserId())
		elog(ERROR, "job_engine: executor of role %u cannot run job " INT64_FORMAT " of role %u",
			 GetSessionUserId(), job->job_id, job->owner);

	je_become_owner(job->owner, &scope);
	if (job->timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, job->timeout_ms);
	je_executor_enter_handler(job->deadline);
	/* An abort that committed before the handler started stops it here. */
	CHECK_FOR_INTERRUPTS();

	result = call_handler(job, isnull);
	je_close_attempt_xact_state();

	/*
	 * The timeout fired and the handler caught its cancel: returning later
	 * is no success, the deadline holds.
	 */
	if (job->timeout_ms > 0 && !get_timeout_active(STATEMENT_TIMEOUT))
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("job " INT64_FORMAT " ran past its deadline", job->job_id),
				 errdetail("The handler caught the cancel of its %d ms timeout and returned afterwards.",
						   job->timeout_ms),
				 errhint("Let the timeout end the handler (do not catch query_canceled), or give it a longer timeout.")));
	je_leave_handler();
	je_end_owner(&scope);
	return result;
}

/*
 * The handler has ended, returned or failed: its timeout is disarmed, and a
 * cancel its abort may have left pending is dropped (shmem.c).  Called on
 * the way out of every handler, errors included.
 */
void
je_leave_handler(void)
{
	disable_timeout(STATEMENT_TIMEOUT, false);
	je_executor_leave_handler();
}

/*
 * Shows the attempt in pg_stat_activity.query.  A handler name may hold up
 * to 200 multibyte characters: the text is clipped on a character boundary,
 * or it would not convert to the encoding of a client reading it.
 */
void
je_report_activity(ExecutionContext *job)
{
	char	   *activity = psprintf("job_engine: job " INT64_FORMAT " attempt %d handler %s",
									job->job_id, job->attempt, job->handler);
	int			len = pg_mbcliplen(activity, strlen(activity), 255);

	activity[len] = '\0';
	pgstat_report_activity(STATE_RUNNING, activity);
	pfree(activity);
}

/*
 * Whether the job was aborted between its claim and je_begin_attempt: such
 * an abort found no attempt to interrupt, so the handler must not start.
 * The table is asked only when some abort has committed since the claim.
 */
static bool
aborted_before_start(ExecutionContext *job)
{
	bool		running;

	if (!je_executor_aborts_since_claim())
		return false;
	je_worker_begin_xact(NULL);
	running = je_attempt_still_running(job->job_id, job->attempt);
	je_worker_end_xact(true);
	return !running;
}

/*
 * Runs one attempt in its own transaction.  When it succeeds, the claim of
 * the executor's next jobs is made in the same transaction (into `next`),
 * saving a commit per job: the next claim still commits before its handler
 * starts.
 */
void
je_run_attempt(ExecutionContext *job, ClaimBuffer *next)
{
	MemoryContext outer_cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;
	volatile bool fenced = false;

	next->njobs = 0;
	je_begin_attempt(job);
	if (aborted_before_start(job))
	{
		je_end_attempt(job);
		return;
	}
	PG_TRY();
	{
		Datum		result;
		bool		isnull;

		je_worker_begin_xact(NULL);
		je_report_activity(job);

		result = je_run_handler(job, &isnull);
		if (je_record_success_in_xact(job->job_id, job->attempt, result, isnull))
		{
			je_claim_chained(next);
			je_worker_end_xact(true);
		}
		else
		{
			/*
			 * Aborted or recovered meanwhile: the handler's work is void.  If
			 * the change came from this very transaction (the handler
			 * aborted its own job), rolling back undoes it too, so the job
			 * is checked again below.
			 */
			je_worker_end_xact(false);
			fenced = true;
		}
	}
	PG_CATCH();
	{
		je_leave_handler();
		edata = je_take_error(outer_cxt);
		AbortCurrentTransaction();
		next->njobs = 0;		/* a chained claim rolled back with it */
	}
	PG_END_TRY();

	if (edata != NULL)
	{
		je_record_failure(job, edata, next);
		FreeErrorData(edata);
	}
	else if (fenced)
		je_record_failure(job, je_unrecordable_outcome(), NULL);

	je_end_attempt(job);
}
