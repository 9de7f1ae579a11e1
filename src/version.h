/*
 * version.h
 *	  The versions of the extension's SQL objects this library serves, and
 *	  the version installed in the current database (version.c).
 */
#ifndef JOB_ENGINE_VERSION_H
#define JOB_ENGINE_VERSION_H

extern char *je_installed_version(void);
extern bool je_version_served(const char *version);
extern void je_report_unserved_version(int elevel, const char *version);
extern void je_require_served_version(void);

#endif
