/*
 * job_engine_example.c
 *	  Example native handlers for job_engine, built and exercised by the test
 *	  suite.  Register them (as a superuser) with e.g.
 *
 *	    SELECT job_engine.register_c_handler('c_hello',
 *	             '$libdir/job_engine_example', 'hello_handler');
 *
 *	  hello_handler  returns {"greeting": "hello <name>", "attempt": n}
 *	  flaky_handler  fails with SQLSTATE 40001 on its first attempt
 *	  busy_handler   works for args.ms milliseconds, checking for cancel
 *	  fatal_handler  ends its process with FATAL (a crashed attempt)
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

Jsonb *
busy_handler(const JobEngineContext *ctx)
{
	char	   *ms_text = arg_text(ctx, "ms");
	long		ms = ms_text ? atol(ms_text) : 1000;

	for (long waited = 0; waited < ms; waited += 10)
	{
		if (ctx->cancel_requested())
			CHECK_FOR_INTERRUPTS();		/* raises the cancel or timeout error */
		pg_usleep(10 * 1000L);
	}
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
