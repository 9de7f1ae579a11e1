/*
 * deferred.h
 *	  Jobs not yet due, kept out of the claim until they are (deferred.c).
 */
#ifndef JOB_ENGINE_DEFERRED_H
#define JOB_ENGINE_DEFERRED_H

extern bool je_deferred_supported(void);
extern bool je_deferred_release_wanted(void);
extern uint64 je_deferred_release_guarded(void);

#endif
