/*
 * guard.h
 *	  The lifecycle guard of job_engine._jobs, and what follows the changes
 *	  to its triggers.
 */
#ifndef JOB_ENGINE_GUARD_H
#define JOB_ENGINE_GUARD_H

extern void je_guard_init(void);

#endif
