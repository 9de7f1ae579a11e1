/*
 * visibility.c
 *	  Which jobs a role sees: the roles it is a member of, for the
 *	  row-level security policy of job_engine._jobs (src/sql/90_views.sql,
 *	  docs/decisions.md).
 *
 * The policy compares a job's owner with this list (owner = ANY (list)),
 * which is what pg_has_role(owner, 'MEMBER') decides row by row; as a list
 * it is an index condition (jobs_history_owner_idx) and the planner, which
 * evaluates a stable function to estimate, knows how many roles it holds.
 * A scan that filters by it calls it once per row, so the list is kept per
 * role, as acl.c keeps its own membership lists, until a change of roles,
 * memberships or databases invalidates it: membership of pg_database_owner
 * follows the current database's owner, which only pg_database records.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* The list of the role member_roles_of, in TopMemoryContext; NULL: none. */
static ArrayType *member_roles = NULL;
static Oid	member_roles_of = InvalidOid;
static bool callbacks_registered = false;

/* A role or a membership changed (or a rolled-back change was undone). */
static void
forget_member_roles(Datum arg, int cacheid, uint32 hashvalue)
{
	if (member_roles != NULL)
		pfree(member_roles);
	member_roles = NULL;
	member_roles_of = InvalidOid;
}

/* The roles `roleid` is a member of, as is_member_of_role() decides. */
static ArrayType *
collect_member_roles(Oid roleid)
{
	Relation	rel = table_open(AuthIdRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	Datum	   *oids = NULL;
	int			n = 0;
	int			size = 0;
	ArrayType  *result;
	MemoryContext old;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			role = ((Form_pg_authid) GETSTRUCT(tup))->oid;

		if (!is_member_of_role(roleid, role))
			continue;
		if (n == size)
		{
			size = size == 0 ? 16 : size * 2;
			oids = oids == NULL ? palloc(size * sizeof(Datum))
				: repalloc(oids, size * sizeof(Datum));
		}
		oids[n++] = ObjectIdGetDatum(role);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	old = MemoryContextSwitchTo(TopMemoryContext);
	result = construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
	MemoryContextSwitchTo(old);
	return result;
}

PG_FUNCTION_INFO_V1(job_engine_member_roles);

Datum
job_engine_member_roles(PG_FUNCTION_ARGS)
{
	Oid			roleid = GetUserId();

	if (!callbacks_registered)
	{
		CacheRegisterSyscacheCallback(AUTHOID, forget_member_roles, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, forget_member_roles, (Datum) 0);
		/* ALTER DATABASE ... OWNER TO changes who is pg_database_owner. */
		CacheRegisterSyscacheCallback(DATABASEOID, forget_member_roles, (Datum) 0);
		callbacks_registered = true;
	}
	if (member_roles == NULL || member_roles_of != roleid)
	{
		forget_member_roles((Datum) 0, 0, 0);
		member_roles = collect_member_roles(roleid);
		member_roles_of = roleid;
	}
	PG_RETURN_ARRAYTYPE_P(DatumGetArrayTypePCopy(PointerGetDatum(member_roles)));
}
