/*
 * native_handler.c
 *	  Native handlers: loading a C handler declared with JOB_ENGINE_HANDLER()
 *	  (job_engine.h), checking it at registration (_check_c_symbol()), and
 *	  calling it with the attempt's ExecutionContext.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "execution_context.h"
#include "job_engine.h"
#include "native_handler.h"

/*
 * Resolves `symbol` of `library` with the dynamic loader.  Its errors for a
 * missing file (58P01) or symbol (42883) say what is missing but not what to
 * do: they are raised again, same SQLSTATE and message, with a hint.
 */
static JobEngineHandler
load_handler_symbol(const char *library, const char *symbol)
{
	MemoryContext cxt = CurrentMemoryContext;
	JobEngineHandler volatile handler = NULL;

	PG_TRY();
	{
		handler = (JobEngineHandler) load_external_function(library, symbol, true, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->hint == NULL && edata->sqlerrcode == ERRCODE_UNDEFINED_FILE)
			edata->hint = pstrdup("Give the library's path as LOAD takes it, e.g. '$libdir/my_module' for a module installed in the directory that pg_config --pkglibdir prints.");
		else if (edata->hint == NULL && edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION)
			edata->hint = psprintf("Check the symbol's spelling: it must be a function the library exports, declared with JOB_ENGINE_HANDLER(%s) from job_engine.h.", symbol);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return handler;
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

	handler = load_handler_symbol(library, symbol);
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
Datum
je_call_native_handler(ExecutionContext *job, bool *isnull)
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
