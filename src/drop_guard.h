/*
 * drop_guard.h
 *	  Keeping our workers from blocking DROP DATABASE (drop_guard.c).
 */
#ifndef JOB_ENGINE_DROP_GUARD_H
#define JOB_ENGINE_DROP_GUARD_H

extern void je_drop_guard_init(void);

#endif
