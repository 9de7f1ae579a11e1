/*
 * gate.c
 *	  The entry point shared by job_engine's public SQL functions.
 *
 * Users may not write the extension's tables, yet submit() must record who
 * called it.  A SECURITY DEFINER function cannot see its caller, so each
 * public function is instead declared LANGUAGE C with this entry point: the
 * gate notes the calling role (GetUserId()), switches to the bootstrap
 * superuser for the duration of the call, and runs the internal function
 * job_engine_internal._<name>(caller, args...) through a kept plan
 * (internal_sql.c).  The
 * internal functions are not executable by PUBLIC and do all validation.
 *
 * The query text is made only from the public function's own catalog name
 * and argument count, never from user input; arguments travel as parameters.
 * An error leaves the gate with the CONTEXT lines of the internal functions
 * cut off: the caller sees its own frames only.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "internal_sql.h"
#include "version.h"

typedef struct GatePlan
{
	Oid			fn_oid;			/* hash key: the public function */
	SPIPlanPtr	plan;
	int			nargs;			/* arguments of the public function */
	bool		retset;
	Oid			rettype;
} GatePlan;

static HTAB *gate_plans = NULL;

/* How the gate's statement passes the caller: its CONTEXT line is found by it. */
#define GATE_CALL_MARK "($1::pg_catalog.oid"

/*
 * Builds and saves the plan calling _<name>($1 caller, $2...), the internal
 * function job_engine_internal._<name> (job_engine._<name> in a database
 * still at release 1.0).  Unqualified: kept plans are analysed under the
 * internal search_path (internal_sql.c), which lists both schemas, so that
 * a plan made before ALTER EXTENSION UPDATE moved the function finds it
 * again when it is remade.
 */
static void
gate_prepare(GatePlan *gp, Oid fn_oid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Form_pg_proc proc;
	StringInfoData sql;
	Oid		   *argtypes;
	char	   *internal_name;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);

	gp->nargs = proc->pronargs;
	gp->retset = proc->proretset;
	gp->rettype = proc->prorettype;

	internal_name = psprintf("_%s", NameStr(proc->proname));
	argtypes = palloc((gp->nargs + 1) * sizeof(Oid));
	argtypes[0] = OIDOID;
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM %s" GATE_CALL_MARK, quote_identifier(internal_name));
	for (int i = 0; i < gp->nargs; i++)
	{
		argtypes[i + 1] = proc->proargtypes.values[i];
		appendStringInfo(&sql, ", $%d", i + 2);
	}
	appendStringInfoChar(&sql, ')');
	ReleaseSysCache(tup);

	gp->plan = je_keep_plan(sql.data, gp->nargs + 1, argtypes);
}

static GatePlan *
gate_lookup(Oid fn_oid)
{
	GatePlan   *gp;
	bool		found;

	if (gate_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(GatePlan);
		gate_plans = hash_create("job_engine gate plans", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS);
	}
	gp = hash_search(gate_plans, &fn_oid, HASH_ENTER, &found);
	if (!found)
		gp->plan = NULL;
	return gp;
}

/* Copies the SPI result into the caller's memory: a value or a set. */
static Datum
gate_result(FunctionCallInfo fcinfo, GatePlan *gp, MemoryContext caller_cxt)
{
	if (gp->retset)
	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
		int			natts = rsinfo->setDesc->natts;
		Datum	   *values = palloc(natts * sizeof(Datum));
		bool	   *nulls = palloc(natts * sizeof(bool));

		if (SPI_tuptable->tupdesc->natts != natts)
			elog(ERROR, "job_engine: internal function returned %d columns, expected %d",
				 SPI_tuptable->tupdesc->natts, natts);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			for (int c = 0; c < natts; c++)
				values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										  c + 1, &nulls[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		return (Datum) 0;
	}

	if (SPI_processed == 0 || gp->rettype == VOIDOID)
	{
		if (gp->rettype == VOIDOID)
			return (Datum) 0;
		fcinfo->isnull = true;
		return (Datum) 0;
	}
	else
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull);
		int16		typlen;
		bool		typbyval;

		if (isnull)
		{
			fcinfo->isnull = true;
			return (Datum) 0;
		}
		get_typlenbyval(gp->rettype, &typlen, &typbyval);
		if (!typbyval)
		{
			MemoryContext old = MemoryContextSwitchTo(caller_cxt);

			value = datumCopy(value, typbyval, typlen);
			MemoryContextSwitchTo(old);
		}
		return value;
	}
}

/*
 * Sets up materialize mode for the public function's set result: its own
 * row type for RETURNS TABLE, a one-column row for SETOF scalar.
 */
static void
gate_begin_set(FunctionCallInfo fcinfo, Oid rettype)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	desc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &desc) == TYPEFUNC_COMPOSITE)
		desc = CreateTupleDescCopy(desc);
	else
	{
		desc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(desc, (AttrNumber) 1, "value", rettype, -1, 0);
	}
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = desc;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
}

/*
 * The lines of an error's CONTEXT that are the caller's own: a line naming
 * an internal function (job_engine_internal._<name>, or job_engine._<name>
 * at release 1.0, its PL/pgSQL frames and the
 * statements that call it) tells the caller nothing it can act on.  The
 * frames are listed innermost first, so the internal ones come before the
 * caller's, and the last of them is the gate's own statement calling
 * _<name>(GATE_CALL_MARK...): everything up to the line naming it goes, the lines
 * that continue a statement written over several lines included.  NULL
 * when no line is left.
 */
static char *
callers_context(const char *context)
{
	const char *kept = context;
	const char *line = context;

	while (*line)
	{
		const char *end = strchr(line, '\n');
		int			len = end ? end - line : strlen(line);
		char	   *one = pnstrdup(line, len);

		if (strstr(one, "job_engine_internal._") != NULL ||
			strstr(one, "job_engine._") != NULL ||
			strstr(one, GATE_CALL_MARK) != NULL)
			kept = line + len + (end ? 1 : 0);
		pfree(one);
		line += len + (end ? 1 : 0);
	}
	return *kept ? pstrdup(kept) : NULL;
}

/* Throws the error being handled again, its CONTEXT cut to the caller's. */
static void
rethrow_for_caller(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	if (edata->context)
		edata->context = callers_context(edata->context);
	ReThrowError(edata);
}

PG_FUNCTION_INFO_V1(job_engine_gate);

Datum
job_engine_gate(PG_FUNCTION_ARGS)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	Oid			caller = GetUserId();
	MemoryContext caller_cxt = CurrentMemoryContext;
	GatePlan   *gp = gate_lookup(fn_oid);
	Datum	   *values;
	char	   *nulls;
	Datum		result = (Datum) 0;
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	values = palloc((PG_NARGS() + 1) * sizeof(Datum));
	nulls = palloc((PG_NARGS() + 1) * sizeof(char));
	values[0] = ObjectIdGetDatum(caller);
	nulls[0] = ' ';
	for (int i = 0; i < PG_NARGS(); i++)
	{
		values[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}

	/* The internal functions must be those this library was written for. */
	je_require_served_version();

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "job_engine: SPI_connect failed");
		if (gp->plan == NULL)
			gate_prepare(gp, fn_oid);
		if (gp->retset)
			gate_begin_set(fcinfo, gp->rettype);
		rc = je_execute_plan(gp->plan, values, nulls, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "job_engine: internal call failed: %s", SPI_result_code_string(rc));
		result = gate_result(fcinfo, gp, caller_cxt);
		SPI_finish();
	}
	PG_CATCH();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		rethrow_for_caller(caller_cxt);
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);

	return result;
}
