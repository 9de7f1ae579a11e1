-------------------------------------------------------------------------------
-- Comments on the public objects
--
-- Piece src/sql/98_comments.sql.  C twin: none.  What \df+, \dv+ and \dd
-- show: one line per public object, the reference (docs/reference.md) has
-- the rest.  Internal objects (named _*) are the engine's own and carry
-- none.  test/pgtap/010_api.sql checks that every public object has one.
-------------------------------------------------------------------------------

COMMENT ON SCHEMA job_engine IS 'job_engine: durable jobs run by background workers; see docs/reference.md';

COMMENT ON TYPE job_engine.job_state IS 'Lifecycle state of a job: created, running, retrying, succeeded, failed, aborted';
COMMENT ON TYPE job_engine.attempt_outcome IS 'How an attempt ended: succeeded, failed, aborted or crashed; running while it runs';

COMMENT ON FUNCTION job_engine.register_handler IS 'Registers or updates a handler: a SQL-callable function taking jsonb, with its queue and retry policy';
COMMENT ON FUNCTION job_engine.register_c_handler IS 'Registers or updates a native C handler (library, symbol); superuser only';
COMMENT ON FUNCTION job_engine.unregister_handler IS 'Removes a handler; refused while it has unfinished jobs, subscriptions or compensates another';
COMMENT ON FUNCTION job_engine.submit IS 'Submits a Command: creates a job of the handler, transactionally; returns its id';
COMMENT ON FUNCTION job_engine.submit_many IS 'Submits one job per element of args, in order; returns their ids';
COMMENT ON FUNCTION job_engine.publish IS 'Publishes an Event: stores it and creates one job per matching subscription; returns the event id';
COMMENT ON FUNCTION job_engine.subscribe IS 'Subscribes a handler to an event type or a prefix pattern (order.*); returns the subscription id';
COMMENT ON FUNCTION job_engine.unsubscribe IS 'Removes a subscription (members of its owner only); returns true, a missing one is an error';
COMMENT ON FUNCTION job_engine.abort IS 'Aborts a waiting job, or interrupts a running one and rolls back its work, recording the reason';
COMMENT ON FUNCTION job_engine.resubmit IS 'Creates a new job with the handler, args and correlation id of a finished one, linked to it';
COMMENT ON FUNCTION job_engine.wait IS 'Blocks until the job ends or the timeout passes; returns its state';
COMMENT ON FUNCTION job_engine.pause_queue IS 'Stops claims from a queue; running jobs finish';
COMMENT ON FUNCTION job_engine.resume_queue IS 'Lets claims take jobs from a paused queue again';
COMMENT ON FUNCTION job_engine.configure_queue IS 'Sets a queue''s concurrency limit, group commit size and retention of finished and of failed jobs; an omitted one goes back to its default';
COMMENT ON FUNCTION job_engine.schedule IS 'Schedules recurring submits of a handler through pg_cron, in this or another database, or replaces the caller''s schedule of that name; returns the pg_cron job id';
COMMENT ON FUNCTION job_engine.unschedule IS 'Removes a schedule of the caller; false if there was none';
COMMENT ON FUNCTION job_engine.submit_from_schedule IS 'What a schedule''s pg_cron command runs: submits the handler, the job naming the schedule (jobs.schedule)';
COMMENT ON FUNCTION job_engine.schedule_rows IS 'The rows of the schedules view: the schedules the caller may see in pg_cron''s database';
COMMENT ON FUNCTION job_engine.purge IS 'Deletes finished jobs older than the interval, with their attempts; returns how many';
COMMENT ON FUNCTION job_engine.context IS 'Inside a handler: the job id, attempt, handler, queue, correlation id, parent job id, event id, owner and deadline; NULL elsewhere';
COMMENT ON FUNCTION job_engine.current_job_id IS 'Inside a handler: the id of the job it runs; NULL elsewhere';
COMMENT ON FUNCTION job_engine.trace IS 'The events and jobs caused by one request (correlation id), as a tree';
COMMENT ON FUNCTION job_engine.metrics IS 'Counters and gauges in Prometheus text format';

COMMENT ON TABLE job_engine.handlers IS 'Registered handlers and their retry policies; changed only through register_handler and unregister_handler';
COMMENT ON TABLE job_engine.queues IS 'Every queue in use, with its settings (paused, concurrency, group commit, retention); changed only through the queue functions';
COMMENT ON TABLE job_engine.subscriptions IS 'Which handler receives which event types';

COMMENT ON VIEW job_engine.jobs IS 'Jobs of the roles the caller belongs to, with their state and latest error';
COMMENT ON VIEW job_engine.attempts IS 'One row per attempt of the caller''s jobs, with its outcome and full error';
COMMENT ON VIEW job_engine.events IS 'Events the caller published or received jobs from';
COMMENT ON VIEW job_engine.workers IS 'The executors running now, their state and the attempt they run';
COMMENT ON VIEW job_engine.schedules IS 'Schedules of the roles the caller belongs to, or that run in a database it owns (in pg_cron''s database), with pg_cron''s last run of each';
COMMENT ON VIEW job_engine.queue_stats IS 'Per queue: the caller''s jobs by state and the age of the oldest due job';
