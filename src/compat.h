/*
 * compat.h
 *	  The PostgreSQL APIs that differ between the major versions job_engine
 *	  builds for: 15 to 18.  Every version test of the C code is here, so
 *	  that the rest reads the same on all of them.
 */
#ifndef JOB_ENGINE_COMPAT_H
#define JOB_ENGINE_COMPAT_H

#include "catalog/pg_database.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_tablespace_d.h"
#include "miscadmin.h"
#include "utils/acl.h"

#if PG_VERSION_NUM < 150000
#error "job_engine requires PostgreSQL 15 or later"
#endif

/*
 * PostgreSQL 16 folded the per-object owner and ACL checks into one each,
 * and split "may SET ROLE to" from membership.
 */
#if PG_VERSION_NUM >= 160000
#define je_proc_aclcheck(fn, role, mode) \
	object_aclcheck(ProcedureRelationId, (fn), (role), (mode))
#define je_database_ownercheck(db) \
	object_ownercheck(DatabaseRelationId, (db), GetUserId())
#define je_tablespace_aclcheck(spc) \
	object_aclcheck(TableSpaceRelationId, (spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) member_can_set_role(GetUserId(), (role))
#else
#define je_proc_aclcheck(fn, role, mode) pg_proc_aclcheck((fn), (role), (mode))
#define je_database_ownercheck(db) pg_database_ownercheck((db), GetUserId())
#define je_tablespace_aclcheck(spc) pg_tablespace_aclcheck((spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) is_member_of_role(GetUserId(), (role))
#endif

#endif
