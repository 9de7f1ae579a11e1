/*
 * vacuum.h
 *	  The supervisor's vacuum of the jobs table (vacuum.c).
 */
#ifndef JOB_ENGINE_VACUUM_H
#define JOB_ENGINE_VACUUM_H

#include "shmem.h"

extern void je_vacuum_jobs_if_due(SupervisorSlot *slot);

#endif
