/*
 * wakeup.h
 *	  Waking executors when a transaction that created jobs commits, and
 *	  interrupting an aborted attempt's executor (wakeup.c).
 */
#ifndef JOB_ENGINE_WAKEUP_H
#define JOB_ENGINE_WAKEUP_H

extern void je_wakeup_init(void);
extern void je_wake_on_commit(int n);
extern void je_interrupt_on_commit(int64 job_id, int32 attempt);

#endif
