/*
 * wait_events.h
 *	  The wait events job_engine's processes report while they wait for
 *	  work or for each other (wait_events.c).
 */
#ifndef JOB_ENGINE_WAIT_EVENTS_H
#define JOB_ENGINE_WAIT_EVENTS_H

typedef enum JeWaitEvent
{
	JE_WAIT_LAUNCHER_MAIN,		/* the launcher between its rounds */
	JE_WAIT_SUPERVISOR_MAIN,	/* a supervisor between its rounds */
	JE_WAIT_EXECUTORS_EXIT,		/* a supervisor waits for its executors to end */
	JE_WAIT_EXECUTOR_IDLE,		/* an executor waits for a job to claim */
	JE_WAIT_STEP_ASIDE,			/* a command waits for a database's workers to end */
	JE_WAIT_EVENT_COUNT
} JeWaitEvent;

extern uint32 je_wait_event(JeWaitEvent event);

#endif
