/*
 * compat.h
 *	  The PostgreSQL APIs that differ between the major versions job_engine
 *	  builds for: 15 to 18.  Every version test of the C code is here, so
 *	  that the rest reads the same on all of them.
 */
#ifndef JOB_ENGINE_COMPAT_H
#define JOB_ENGINE_COMPAT_H

#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_tablespace_d.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc_tables.h"
#include "utils/regproc.h"

#if PG_VERSION_NUM < 150000
#error "job_engine requires PostgreSQL 15 or later"
#endif

/* PostgreSQL 17 tells a background worker by its backend type; 18 dropped the flag. */
#if PG_VERSION_NUM >= 170000
#define je_am_background_worker() AmBackgroundWorkerProcess()
#else
#define je_am_background_worker() IsBackgroundWorker
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
#define je_extension_ownercheck(ext) \
	object_ownercheck(ExtensionRelationId, (ext), GetUserId())
#define je_relation_ownercheck(rel) \
	object_ownercheck(RelationRelationId, (rel), GetUserId())
#define je_tablespace_aclcheck(spc) \
	object_aclcheck(TableSpaceRelationId, (spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) member_can_set_role(GetUserId(), (role))
#define je_namespace_aclcheck(nsp, role, mode) \
	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#else
#define je_proc_aclcheck(fn, role, mode) pg_proc_aclcheck((fn), (role), (mode))
#define je_database_ownercheck(db) pg_database_ownercheck((db), GetUserId())
#define je_extension_ownercheck(ext) pg_extension_ownercheck((ext), GetUserId())
#define je_relation_ownercheck(rel) pg_class_ownercheck((rel), GetUserId())
#define je_tablespace_aclcheck(spc) pg_tablespace_aclcheck((spc), GetUserId(), ACL_CREATE)
#define je_may_become(role) is_member_of_role(GetUserId(), (role))
#define je_namespace_aclcheck(nsp, role, mode) pg_namespace_aclcheck((nsp), (role), (mode))
#endif

/* PostgreSQL 16 hands out the GUC array with its length. */
#if PG_VERSION_NUM >= 160000
#define je_guc_variables(n) get_guc_variables(n)
#else
#define je_guc_variables(n) (*(n) = GetNumConfigOptions(), get_guc_variables())
#endif

/*
 * How many shared objects this process has loaded so far, to tell whether
 * an attempt loaded a library (execution_context.c): glibc, musl and the
 * BSDs count loads in dl_iterate_phdr's dlpi_adds; where the structure is
 * older than that field, the objects are counted.  Elsewhere it returns 0:
 * only LOAD is noticed there (docs/architecture.md, "7. Security model").
 */
#if defined(__GLIBC__) || defined(__linux__)
#include <link.h>
#include <stddef.h>

static int
je_count_objects_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	uint64	   *count = (uint64 *) data;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs))
	{
		*count = (uint64) info->dlpi_adds;
		return 1;				/* the first object says it all */
	}
	(*count)++;
	return 0;
}

static inline uint64
je_loaded_objects(void)
{
	uint64		count = 0;

	(void) dl_iterate_phdr(je_count_objects_cb, &count);
	return count;
}
#else
#define je_loaded_objects() ((uint64) 0)
#endif

/*
 * PostgreSQL 17 lets an extension name its wait events (shown in
 * pg_stat_activity.wait_event); before, each is just "Extension".
 */
#include "utils/wait_event.h"
#if PG_VERSION_NUM >= 170000
#define je_new_wait_event(name) WaitEventExtensionNew(name)
#else
#define je_new_wait_event(name) ((void) (name), (uint32) PG_WAIT_EXTENSION)
#endif

/*
 * PostgreSQL 16 lets a VACUUM leave out its last step, the update of its
 * database's pg_database row (SKIP_DATABASE_STATS); before, every VACUUM
 * ends with it.  Appends the option to a VacuumStmt's options where there
 * is one (vacuum.c says why it is left out).
 */
#if PG_VERSION_NUM >= 160000
#define je_vacuum_skip_database_stats(options) \
	lappend((options), makeDefElem("skip_database_stats", NULL, -1))
#else
#define je_vacuum_skip_database_stats(options) (options)
#endif

/* PostgreSQL 16 added a soft-error context to the name parser. */
#if PG_VERSION_NUM >= 160000
#define je_string_to_qualified_name_list(s) stringToQualifiedNameList((s), NULL)
#else
#define je_string_to_qualified_name_list(s) stringToQualifiedNameList(s)
#endif

#endif
