/*
 * internal_sql.h
 *	  Running the extension's own statements from C (internal_sql.c).
 */
#ifndef JOB_ENGINE_INTERNAL_SQL_H
#define JOB_ENGINE_INTERNAL_SQL_H

#include "executor/spi.h"

extern SPIPlanPtr je_keep_plan(const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr je_keep_generic_plan(const char *sql, int nargs, Oid *argtypes);
extern int	je_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls,
							bool read_only, long count);
extern int	je_push_internal_settings(bool claim_planner);
extern void je_pop_internal_settings(int level);
extern int	je_push_lock_timeout(int ms);

#endif
