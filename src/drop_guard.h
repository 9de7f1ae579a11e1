/*
 * drop_guard.h
 *	  DROP EXTENSION job_engine refuses while jobs are unfinished.
 */
#ifndef JOB_ENGINE_DROP_GUARD_H
#define JOB_ENGINE_DROP_GUARD_H

extern void je_drop_guard_init(void);

#endif
