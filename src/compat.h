/*
 * compat.h
 *	  The few PostgreSQL APIs that differ between the major versions
 *	  job_engine builds for (15 is the target; 16 and 17 stay reachable).
 */
#ifndef JOB_ENGINE_COMPAT_H
#define JOB_ENGINE_COMPAT_H

#include "catalog/pg_proc.h"
#include "utils/acl.h"
#include "utils/regproc.h"

#if PG_VERSION_NUM < 150000
#error "job_engine requires PostgreSQL 15 or later"
#endif

/* PostgreSQL 16 folded the per-object aclcheck functions into one. */
#if PG_VERSION_NUM >= 160000
#define je_proc_aclcheck(fn, role, mode) \
	object_aclcheck(ProcedureRelationId, (fn), (role), (mode))
#else
#define je_proc_aclcheck(fn, role, mode) pg_proc_aclcheck((fn), (role), (mode))
#endif

/* PostgreSQL 16 added a soft-error context to the name parser. */
#if PG_VERSION_NUM >= 160000
#define je_string_to_qualified_name_list(s) stringToQualifiedNameList((s), NULL)
#else
#define je_string_to_qualified_name_list(s) stringToQualifiedNameList(s)
#endif

#endif
