/*
 * wakeup.h
 *	  Waking executors when a transaction that created jobs commits.
 */
#ifndef JOB_ENGINE_WAKEUP_H
#define JOB_ENGINE_WAKEUP_H

extern void je_wakeup_init(void);

/* drop_guard.c */
extern void je_drop_guard_init(void);

#endif
