/*
 * wait_events.c
 *	  The wait events job_engine's processes report while they sleep, so
 *	  that pg_stat_activity.wait_event says what each one waits for.
 *
 * From PostgreSQL 17 each has a name of its own, registered in shared
 * memory the first time a process waits on it (WaitEventExtensionNew, the
 * same number for the same name in every process), named like the
 * contrib modules' ("DblinkGetResult"): the extension, then the wait.
 * Before 17 every one is "Extension" (compat.h).
 */
#include "postgres.h"

#include "compat.h"
#include "wait_events.h"

static const char *const wait_event_names[JE_WAIT_EVENT_COUNT] = {
	[JE_WAIT_LAUNCHER_MAIN] = "JobEngineLauncherMain",
	[JE_WAIT_SUPERVISOR_MAIN] = "JobEngineSupervisorMain",
	[JE_WAIT_EXECUTORS_EXIT] = "JobEngineExecutorsExit",
	[JE_WAIT_EXECUTOR_IDLE] = "JobEngineExecutorIdle",
	[JE_WAIT_STEP_ASIDE] = "JobEngineStepAside",
};

/* This process's numbers for them, 0 until first used. */
static uint32 wait_event_ids[JE_WAIT_EVENT_COUNT];

/* The wait event info to pass to WaitLatch() for `event`. */
uint32
je_wait_event(JeWaitEvent event)
{
	if (wait_event_ids[event] == 0)
		wait_event_ids[event] = je_new_wait_event(wait_event_names[event]);
	return wait_event_ids[event];
}
