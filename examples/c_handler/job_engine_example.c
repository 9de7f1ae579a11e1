/*
 * job_engine_example.c
 *	  Example native handlers for job_engine, built and exercised by the test
 *	  suite.  Register them (as a superuser) with e.g.
 *
 *	    SELECT job_engine.register_c_handler('c_hello',
 *	             '$libdir/job_engine_example', 'hello_handler');
 *
 *	  hello_handler  returns {"greeting": "hello <name>", "attempt": n, "job_id": id}
 *	  flaky_handler  fails with SQLSTATE 40001 on its first attempt
 *	  busy_handler   works for args.ms milliseconds, checking for cancel
 *	  fatal_handler  ends its process with FATAL (a crashed attempt)
 *	  deaf_handler   notices a stop request but never acts on it (tests)
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "job_engine.h"

PG_MODULE_MAGIC;

JOB_ENGINE_HANDLER(hello_handler);
JOB_ENGINE_HANDLER(flaky_handler);
JOB_ENGINE_HANDLER(busy_handler);
JOB_ENGINE_HANDLER(fatal_handler);
JOB_ENGINE_HANDLER(deaf_handler);

/* Looks up a top-level string member of the job's args (NULL if absent). */
static char *
arg_text(const JobEngineContext *ctx, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&ctx->args->root, JB_FOBJECT, &k);
	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
	return NULL;
}

static Jsonb *
jsonb_from_text(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

Jsonb *
hello_handler(const JobEngineContext *ctx)
{
	char	   *name = arg_text(ctx, "name");
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"greeting\": ");
	escape_json(&buf, psprintf("hello %s", name ? name : "world"));
	appendStringInfo(&buf, ", \"attempt\": %d, \"job_id\": " INT64_FORMAT "}",
					 ctx->attempt, ctx->job_id);
	return jsonb_from_text(buf.data);
}

Jsonb *
flaky_handler(const JobEngineContext *ctx)
{
	if (ctx->attempt == 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("flaky_handler fails its first attempt"),
				 errdetail("Job " INT64_FORMAT ".", ctx->job_id),
				 errhint("The retry will succeed.")));
	return jsonb_from_text("{\"ok\": true}");
}

/*
 * Works for args.ms milliseconds (default `ms`), or until a stop request
 * (an abort, the timeout, a shutdown): returns whether one came.
 */
static bool
work_until_stopped(const JobEngineContext *ctx, long ms)
{
	char	   *ms_text = arg_text(ctx, "ms");

	if (ms_text != NULL)
		ms = atol(ms_text);
	for (long waited = 0; waited < ms; waited += 10)
	{
		if (ctx->cancel_requested())
			return true;
		pg_usleep(10 * 1000L);
	}
	return false;
}

Jsonb *
busy_handler(const JobEngineContext *ctx)
{
	if (work_until_stopped(ctx, 1000))
		CHECK_FOR_INTERRUPTS();		/* raises the cancel or timeout error */
	return jsonb_from_text("{\"done\": true}");
}

Jsonb *
fatal_handler(const JobEngineContext *ctx)
{
	ereport(FATAL,
			(errcode(ERRCODE_ADMIN_SHUTDOWN),
			 errmsg("fatal_handler ends its process")));
	return NULL;
}

/*
 * Waits up to args.ms milliseconds (default 30000) for a stop request (an
 * abort, the timeout) and then fails with an error of its own, without ever
 * calling CHECK_FOR_INTERRUPTS(): code that notices the request but ends its
 * own way.  The tests use it to leave a cancel pending when the handler
 * ends.  Without a request it returns {"stopped": false}.
 */
Jsonb *
deaf_handler(const JobEngineContext *ctx)
{
	if (work_until_stopped(ctx, 30000))
		ereport(ERROR,
				(errcode(ERRCODE_RAISE_EXCEPTION),
				 errmsg("deaf_handler noticed a stop request and ends on its own")));
	return jsonb_from_text("{\"stopped\": false}");
}
