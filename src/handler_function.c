/*
 * handler_function.c
 *	  The function of a SQL handler: job_engine.handlers.fn holds its
 *	  signature, "schema.name(jsonb)", which is looked up when a job is
 *	  submitted (job_engine_internal._handler_function()) and again when each attempt
 *	  starts (attempt.c).
 *
 * A signature, not an OID (docs/decisions.md): dropping the function and
 * creating it again with the same signature repairs the handler, pg_dump and
 * pg_restore keep it, and pg_upgrade accepts the table, which it refuses
 * with a regprocedure column.  Renaming the function or its schema is, for
 * the handler, like dropping it.
 *
 * Every handler function takes exactly one jsonb (register_handler checks
 * it), so the argument list of a signature is always "(jsonb)" and only the
 * qualified name needs parsing: no type name is looked up through a
 * search_path.  The lookup is two syscache probes (schema, then function by
 * name, argument types and schema), which the syscache keeps up to date with
 * every DROP, CREATE and RENAME; no cache of our own is needed.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "compat.h"
#include "handler_function.h"

#define ARGUMENTS "(jsonb)"

/*
 * The function a handler's signature names now, or InvalidOid if there is
 * none.  No privilege is checked (not even USAGE on the schema): the caller
 * checks EXECUTE on the function, as the role that will run it.
 */
Oid
je_resolve_handler_function(const char *signature)
{
	size_t		len = strlen(signature);
	size_t		name_len;
	char	   *qualified;
	List	   *names;
	char	   *schema;
	char	   *name;
	Oid			nsp;
	Oid			jsonb = JSONBOID;

	if (len <= strlen(ARGUMENTS) || strcmp(signature + len - strlen(ARGUMENTS), ARGUMENTS) != 0)
		return InvalidOid;
	name_len = len - strlen(ARGUMENTS);
	qualified = pnstrdup(signature, name_len);
	names = je_string_to_qualified_name_list(qualified);
	DeconstructQualifiedName(names, &schema, &name);
	/* Stored signatures are always qualified: no search_path is followed. */
	if (schema == NULL)
		return InvalidOid;
	nsp = get_namespace_oid(schema, true);
	if (!OidIsValid(nsp))
		return InvalidOid;
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(&jsonb, 1)),
						   ObjectIdGetDatum(nsp));
}

/*
 * job_engine_internal._handler_function(signature): the OID of the function, NULL
 * when no function has that signature now.  For submit and the other
 * functions that refuse jobs which could only fail.
 */
PG_FUNCTION_INFO_V1(job_engine_handler_function);

Datum
job_engine_handler_function(PG_FUNCTION_ARGS)
{
	Oid			fn_oid = je_resolve_handler_function(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	if (!OidIsValid(fn_oid))
		PG_RETURN_NULL();
	PG_RETURN_OID(fn_oid);
}
