/*
 * running.h
 *	  Running jobs per queue in shared memory, for concurrency limits
 *	  (running.c).
 */
#ifndef JOB_ENGINE_RUNNING_H
#define JOB_ENGINE_RUNNING_H

extern void je_running_install_hooks(void);
extern void je_running_note_move(Oid jobs_relid, const char *queue, int32 delta);
extern void je_running_untrust(Oid jobs_relid);
extern bool je_running_count(Oid jobs_relid, const char *queue, int32 *running);
extern bool je_running_rebuild_due(void);
extern void je_running_rebuild(void);

#endif
