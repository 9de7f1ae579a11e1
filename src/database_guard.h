/*
 * database_guard.h
 *	  Our workers step aside for the database commands that need a database
 *	  to themselves.
 */
#ifndef JOB_ENGINE_DATABASE_GUARD_H
#define JOB_ENGINE_DATABASE_GUARD_H

extern void je_database_guard_init(void);

#endif
