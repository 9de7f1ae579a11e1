/*
 * worker.c
 *	  What the launcher, the supervisors and the executors share: signal
 *	  handling, configuration reload, whether the extension is installed,
 *	  the one way a worker runs a transaction of its own, taking the error
 *	  in a PG_CATCH, and running a step in a subtransaction that may fail
 *	  on its own.
 *
 * A worker's transaction is the same sequence wherever it is used:
 * statement timestamp, transaction, SPI connection, snapshot, and what
 * pg_stat_activity shows; then the reverse.  It is the engine's, whatever
 * the defaults meant for users' sessions say (ALTER SYSTEM SET
 * default_transaction_read_only = on must not stop the engine): read-write,
 * READ COMMITTED, and committed at least as durably as
 * synchronous_commit = on.  The lock_timeout of its statements is pinned
 * where they run (internal_sql.c).  Catalog-only transactions (the
 * extension check here, the launcher's look at pg_database, the vacuum) run
 * no SQL and keep their own, shorter sequence.
 *
 * An executor sends its notifications just after the transaction that
 * queued them commits, not in it (je_worker_notify).  PostgreSQL serializes
 * the commits of all notifying transactions of the cluster with one lock,
 * held until the commit's WAL flush is over: with a notification in every
 * attempt's transaction, the executors' commits could not share a flush and
 * each executor added waits instead of throughput.  The notifications of a
 * committed transaction go out in a short transaction of their own whose
 * commit is not waited for (a notification is not durable anyway), in the
 * order they were queued; those of a (sub)transaction that rolls back are
 * dropped, as PostgreSQL would drop them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "internal_sql.h"
#include "version.h"
#include "worker.h"

/*
 * SIGTERM asks a worker to stop: the postmaster sends it at a stop or
 * restart of the server, database_guard.c before DROP DATABASE and the like,
 * a supervisor to its executors after DROP EXTENSION, an operator with
 * pg_terminate_backend().  PostgreSQL's die() would end the process at its
 * next interrupt check with FATAL "terminating background worker ... due to
 * administrator command" and exit code 1, which the postmaster logs as well:
 * two lines per worker for a plain stop, as if each had failed.
 *
 * So a worker at rest (waiting on its latch, or in a step of bookkeeping
 * short enough to finish first) stops quietly: the signal only sets
 * ProcDiePending, without InterruptPending, so that no interrupt check acts
 * on it, and the worker exits with code 0 when it is next between steps
 * (je_worker_exit_if_stopping).  Exit code 0 tells the postmaster the worker
 * is done, and it logs nothing.  Work that a stop must cut short (an
 * attempt's handler, a purge, a vacuum) runs interruptible
 * (je_worker_interruptible): there SIGTERM is die(), as it always was, and
 * the FATAL says that the work was cut short.
 */
static volatile sig_atomic_t interruptible = false;

static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	if (interruptible)
		die(postgres_signal_arg);
	else
	{
		if (!proc_exit_inprogress)
			ProcDiePending = true;
		SetLatch(MyLatch);
	}
	errno = save_errno;
}

/* SIGHUP reloads, SIGTERM stops (see above). */
void
je_worker_handle_signals(void)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
}

/*
 * From now on, a SIGTERM interrupts what the worker does (true) or waits
 * for it to end (false).  A stop asked for while the worker was at rest is
 * acted on at the next interrupt check.
 */
void
je_worker_interruptible(bool on)
{
	interruptible = on;
	if (on && ProcDiePending)
		InterruptPending = true;
}

/*
 * Between steps, outside any transaction: if the worker was asked to stop,
 * it exits with code 0, quietly.
 */
void
je_worker_exit_if_stopping(void)
{
	if (!ProcDiePending)
		return;
	Assert(!IsTransactionState());
	elog(DEBUG1, "job_engine: %s stops", MyBgworkerEntry->bgw_name);
	proc_exit(0);
}

void
je_worker_process_reload(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Runs fn(arg), a step of a worker that runs in transactions of its own.
 * DROP EXTENSION can drop the tables under such a step (the step waits for
 * the lock the DROP holds, then finds its relation gone): an error raised
 * while the extension is no longer installed ends the step, which returns
 * false, and the worker acts as it does when it finds the extension
 * dropped.  Any other error is raised again, as if not caught.  The worker
 * is left not interruptible, and outside any transaction.
 */
bool
je_worker_unless_dropped(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		je_worker_interruptible(false);
		edata = je_take_error(cxt);
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	if (edata == NULL)
		return true;
	if (je_extension_installed())
		ReThrowError(edata);
	elog(DEBUG1, "job_engine: %s: the extension was dropped: %s",
		 MyBgworkerEntry->bgw_name, edata->message);
	FreeErrorData(edata);
	return false;
}

/*
 * Whether the extension is installed in this database at a version this
 * library serves (version.c).  At another version, says so with a WARNING
 * once per version, not on every call: the supervisor asks every second.
 */
bool
je_extension_installed(void)
{
	static char *warned_version = NULL;
	bool		served;
	bool		own_xact = !IsTransactionState();
	char	   *version;

	if (own_xact)
		StartTransactionCommand();
	version = je_installed_version();
	served = version != NULL && je_version_served(version);
	if (version != NULL && !served &&
		(warned_version == NULL || strcmp(version, warned_version) != 0))
	{
		je_report_unserved_version(WARNING, version);
		if (warned_version != NULL)
			pfree(warned_version);
		warned_version = MemoryContextStrdup(TopMemoryContext, version);
	}
	else if (served && warned_version != NULL)
	{
		pfree(warned_version);
		warned_version = NULL;
	}
	if (own_xact)
		CommitTransactionCommand();
	return served;
}

/*
 * Starts a transaction of the worker's own, connected to SPI with a
 * snapshot, showing `activity` in pg_stat_activity (unless NULL).
 */
void
je_worker_begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* Before the first snapshot, which fixes the isolation level. */
	XactIsoLevel = XACT_READ_COMMITTED;
	XactDeferrable = false;
	if (!RecoveryInProgress())
		XactReadOnly = false;
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (activity != NULL)
		pgstat_report_activity(STATE_RUNNING, activity);
}

/* Ends what je_worker_begin_xact started: commits, or rolls back. */
void
je_worker_end_xact(bool commit)
{
	SPI_finish();
	PopActiveSnapshot();
	/*
	 * A lost claim would lose the record of an attempt that ran; a lost
	 * outcome, the record of a job that finished.  Stronger settings
	 * (remote_apply) are kept.
	 */
	if (commit && synchronous_commit < SYNCHRONOUS_COMMIT_ON)
		(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
	if (commit)
		CommitTransactionCommand();
	else
		AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	je_worker_send_notifications();
}

/*
 * A notification queued by this process: the (sub)transaction level that
 * queued it, 0 once its top-level transaction has committed.
 */
typedef struct DeferredNotification
{
	int			nestlevel;
	char	   *channel;		/* NULL: a log line (je_worker_log_at_commit) */
	char	   *payload;		/* or the line */
	int			elevel;			/* of a log line */
} DeferredNotification;

static bool defer_notifications = false;
static MemoryContext deferred_cxt = NULL;
static List *deferred = NIL;	/* of DeferredNotification, in deferred_cxt */

/* Drops the notifications queued at `nestlevel` or deeper. */
static void
drop_deferred(int nestlevel)
{
	ListCell   *lc;

	foreach(lc, deferred)
	{
		DeferredNotification *n = lfirst(lc);

		if (n->nestlevel >= nestlevel)
		{
			if (n->channel != NULL)
				pfree(n->channel);
			pfree(n->payload);
			pfree(n);
			deferred = foreach_delete_current(deferred, lc);
		}
	}
}

/* Those queued at `nestlevel` or deeper now belong to level `to`. */
static void
move_deferred(int nestlevel, int to)
{
	ListCell   *lc;

	foreach(lc, deferred)
	{
		DeferredNotification *n = lfirst(lc);

		if (n->nestlevel >= nestlevel)
			n->nestlevel = to;
	}
}

/*
 * Writes one log line.  At commit, an error would come after the commit
 * record, where PostgreSQL can only PANIC: the line is short (see
 * je_worker_log_at_commit), and an error writing it (out of memory) is
 * dropped with the line.
 */
static void
write_line(int elevel, const char *line)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		ereport(elevel, (errmsg_internal("%s", line), errhidestmt(true), errhidecontext(true)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
}

/*
 * Writes the log lines of the transaction that has just committed, and
 * forgets them; its notifications stay for je_worker_send_notifications.
 * Only lines below ERROR are queued (je_worker_log_at_commit): writing one
 * cannot fail the commit.
 */
static void
write_committed_lines(void)
{
	ListCell   *lc;

	foreach(lc, deferred)
	{
		DeferredNotification *n = lfirst(lc);

		if (n->channel == NULL && n->nestlevel == 0)
		{
			write_line(n->elevel, n->payload);
			pfree(n->payload);
			pfree(n);
			deferred = foreach_delete_current(deferred, lc);
		}
	}
}

static void
deferred_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
	{
		move_deferred(1, 0);
		write_committed_lines();
	}
	else if (event == XACT_EVENT_ABORT)
		drop_deferred(1);
}

static void
deferred_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_COMMIT_SUB)
		move_deferred(level, level - 1);
	else if (event == SUBXACT_EVENT_ABORT_SUB)
		drop_deferred(level);
}

/* Sets up what keeps notifications and log lines until commit, once. */
static void
start_deferring(void)
{
	if (deferred_cxt != NULL)
		return;
	deferred_cxt = AllocSetContextCreate(TopMemoryContext, "job_engine deferred notifications",
										 ALLOCSET_SMALL_SIZES);
	RegisterXactCallback(deferred_xact_callback, NULL);
	RegisterSubXactCallback(deferred_subxact_callback, NULL);
}

/* From now on, this process's notifications are sent after commit. */
void
je_worker_defer_notifications(void)
{
	start_deferring();
	defer_notifications = true;
}

/* Queues a notification or (channel NULL) a log line at this nest level. */
static void
defer(const char *channel, const char *payload, int elevel)
{
	MemoryContext old = MemoryContextSwitchTo(deferred_cxt);
	DeferredNotification *n = palloc(sizeof(DeferredNotification));

	n->nestlevel = GetCurrentTransactionNestLevel();
	n->channel = channel != NULL ? pstrdup(channel) : NULL;
	n->payload = pstrdup(payload);
	n->elevel = elevel;
	deferred = lappend(deferred, n);
	MemoryContextSwitchTo(old);
}

/*
 * Writes `line` to the server log at `elevel` (below ERROR: it must not
 * fail) when the current transaction commits, in any process; nothing if
 * the (sub)transaction that queued it rolls back.  A line that tells of
 * an outcome is thus written once the outcome is on record, and once for
 * each time it is: a group of attempts that records a failure and is then
 * rolled back and run again (group_commit.c) would otherwise log that
 * failure twice, and a commit that fails would leave a line for an outcome
 * that was never recorded.  Outside a transaction it is written at once.
 * A line is cut to JE_LOG_LINE_MAX bytes.
 */
void
je_worker_log_at_commit(int elevel, const char *line)
{
	/* A handler's message has no bound: the line has, in whole characters. */
	char	   *clipped = pnstrdup(line, pg_mbcliplen(line, strlen(line), JE_LOG_LINE_MAX));

	Assert(elevel < ERROR);
	if (!IsTransactionState())
	{
		write_line(elevel, clipped);
		return;
	}
	start_deferring();
	defer(NULL, clipped, elevel);
}

/*
 * NOTIFY `channel`, `payload` when the current transaction commits: at its
 * commit, or in an executor just after it (see the top of this file).
 */
void
je_worker_notify(const char *channel, const char *payload)
{
	if (!defer_notifications)
	{
		Async_Notify(channel, payload);
		return;
	}
	defer(channel, payload, 0);
}

/*
 * Sends the notifications of the transactions this process has committed,
 * in a transaction of their own that does not wait for its WAL flush.  A
 * failure (the notification queue full, say) costs the notifications only,
 * never the outcomes they tell of: it is logged, and the process goes on.
 * Interrupts are held so that a termination cannot fall between an
 * outcome's commit and its notification.
 */
void
je_worker_send_notifications(void)
{
	List	   *todo;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;
	uint32		holdoff = InterruptHoldoffCount;

	if (deferred == NIL || IsTransactionState())
		return;
	todo = deferred;
	deferred = NIL;
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		StartTransactionCommand();
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		foreach(lc, todo)
		{
			DeferredNotification *n = lfirst(lc);

			Async_Notify(n->channel, n->payload);
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		InterruptHoldoffCount = holdoff + 1;
		edata = je_take_error(cxt);
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
	if (edata != NULL)
	{
		ereport(WARNING,
				(errmsg("job_engine: could not send %d notifications: %s",
						list_length(todo), edata->message)));
		FreeErrorData(edata);
	}
	MemoryContextReset(deferred_cxt);
}

/*
 * Runs one bookkeeping statement of the extension in a transaction of its
 * own, its plan kept in *plan, and returns the first column of its one
 * row as a number (0 when NULL or not one row).
 */
uint64
je_worker_run_statement(const char *activity, SPIPlanPtr *plan, const char *sql,
						int nargs, Oid *argtypes, Datum *values)
{
	uint64		result = 0;
	int			rc;

	je_worker_begin_xact(activity);
	if (*plan == NULL)
		*plan = je_keep_plan(sql, nargs, argtypes);
	rc = je_execute_plan(*plan, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "job_engine: \"%s\" failed: %s", activity, SPI_result_code_string(rc));
	if (SPI_processed == 1 && SPI_tuptable)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = isnull ? 0 : DatumGetInt64(d);
	}
	je_worker_end_xact(true);
	return result;
}

/* In a PG_CATCH: the error, copied into `cxt`, and the error state cleared. */
ErrorData *
je_take_error(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	return edata;
}

/*
 * Runs fn(arg) in a subtransaction of the current transaction, in the
 * current SPI connection.  Returns NULL when it succeeded, or its error
 * (in the caller's memory) with the subtransaction rolled back.
 */
ErrorData *
je_in_subtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		edata = je_take_error(cxt);
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
