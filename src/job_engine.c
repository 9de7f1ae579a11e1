/*
 * job_engine.c
 *	  Module load: settings, shared memory, hooks and the launcher.
 *
 * job_engine must be loaded through shared_preload_libraries: its workers
 * are registered and its shared memory reserved at postmaster start.
 * Loaded any other way (CREATE EXTENSION in a cluster that does not
 * preload it) it refuses with an error saying how to fix the setting.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "database_guard.h"
#include "drop_guard.h"
#include "guard.h"
#include "launcher.h"
#include "settings.h"
#include "metrics.h"
#include "running.h"
#include "shmem.h"
#include "wakeup.h"

PG_MODULE_MAGIC;



void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job_engine must be loaded via shared_preload_libraries"),
				 errhint("Add job_engine to shared_preload_libraries in postgresql.conf and restart the server.")));

	je_define_settings();
	je_shmem_install_hooks();
	je_metrics_install_hooks();
	je_running_install_hooks();
	je_wakeup_init();
	je_database_guard_init();
	je_drop_guard_init();
	je_guard_init();
	/*
	 * pg_upgrade runs both servers in binary-upgrade mode: no worker may
	 * claim, recover or purge jobs of the old cluster while it is read, nor
	 * connect to the new one while its schema is being restored.
	 */
	if (!IsBinaryUpgrade)
		je_register_launcher();
}
