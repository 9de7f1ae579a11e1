/*
 * recovery.h
 *	  The supervisor's recovery of crashed attempts (recovery.c).
 */
#ifndef JOB_ENGINE_RECOVERY_H
#define JOB_ENGINE_RECOVERY_H

extern void je_recover_crashed(int *pids, int npids, const char *dbname);
extern void je_recover_orphans(const char *dbname);

#endif
