-- 455_ordering_scope.sql: one role's jobs do not steer another's (issue 12
-- §3, first bullet).  Ordering keys, like idempotency keys, belong to the
-- job's owner: another role's unfinished job with the same key neither
-- delays a job (an existence oracle) nor blocks it (for up to 99 years,
-- invisibly).  Dependencies on jobs of other roles are refused exactly like
-- dependencies on jobs that do not exist.
--
-- The jobs here run: the file commits as it goes.

SET client_min_messages = warning;

SELECT plan(9);

\ir ../fixtures/pgtap_helpers.sql

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't455_alice') THEN
        CREATE ROLE t455_alice;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 't455_bob') THEN
        CREATE ROLE t455_bob;
    END IF;
END
$$;
CALL pg_temp.drop_handlers('t455_');
DROP SCHEMA IF EXISTS t455 CASCADE;
CREATE SCHEMA t455;
CREATE FUNCTION t455.echo(a jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT a $$;
GRANT USAGE ON SCHEMA t455 TO PUBLIC;
SELECT job_engine.register_handler('t455_h', 't455.echo(jsonb)', queue => 't455_q', max_attempts => 1);

-- ordering keys ---------------------------------------------------------------------------
-- bob's unfinished job with key invoice-42, due tomorrow.
SET ROLE t455_bob;
SELECT job_engine.submit('t455_h', '{"who": "bob"}', ordering_key => 'invoice-42',
                         run_at => now() + interval '1 day') AS bob_invoice \gset
RESET ROLE;
SET ROLE t455_alice;
SELECT job_engine.submit('t455_h', '{"who": "alice"}', ordering_key => 'invoice-42') AS alice_invoice \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:alice_invoice, 'succeeded', 15), 'succeeded',
    'ordering_key: a job does not wait for another role''s unfinished job with the same key');

-- alice parks key order-7 for 99 years; bob's jobs with that key are due now.
SET ROLE t455_alice;
SELECT job_engine.submit('t455_h', '{"who": "alice"}', ordering_key => 'order-7',
                         run_at => now() + interval '99 years') AS alice_order \gset
RESET ROLE;
SET ROLE t455_bob;
SELECT job_engine.submit('t455_h', '{"who": "bob", "n": 1}', ordering_key => 'order-7') AS bob_order1 \gset
SELECT job_engine.submit('t455_h', '{"who": "bob", "n": 2}', ordering_key => 'order-7') AS bob_order2 \gset
RESET ROLE;
SELECT is(pg_temp.await_state(:bob_order2, 'succeeded', 15), 'succeeded',
    'ordering_key: a job far in the future does not block another role''s jobs with the same key');
SELECT ok((SELECT b2.started_at >= b1.finished_at
             FROM job_engine.jobs b1, job_engine.jobs b2
            WHERE b1.id = :bob_order1 AND b2.id = :bob_order2),
    'ordering_key: ... and the role''s own jobs with the key still run in order');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :alice_order), 'created',
    'ordering_key: the parked job itself still waits');

-- dependencies on other roles' jobs ---------------------------------------------------------
SELECT max(id) + 1000000 AS no_such_job FROM job_engine._jobs \gset
SET ROLE t455_alice;
SELECT throws_ok(format($$SELECT job_engine.submit('t455_h', '{}', depends_on => ARRAY[%s])$$, :bob_invoice),
    '23503', format('job %s named in "depends_on" does not exist', :bob_invoice),
    'depends_on: another role''s job is refused as if it did not exist (23503)');
SELECT throws_ok(format($$SELECT job_engine.submit('t455_h', '{}', depends_on => ARRAY[%s])$$, :no_such_job),
    '23503', format('job %s named in "depends_on" does not exist', :no_such_job),
    'depends_on: ... with the same error as a job that never existed');
RESET ROLE;

-- idempotency keys (already per owner; guarded here) -------------------------------------------
SET ROLE t455_alice;
SELECT job_engine.submit('t455_h', '{}', idempotency_key => 'once', run_at => now() + interval '1 day') AS alice_once \gset
RESET ROLE;
SET ROLE t455_bob;
SELECT job_engine.submit('t455_h', '{}', idempotency_key => 'once', run_at => now() + interval '1 day') AS bob_once \gset
RESET ROLE;
SELECT isnt(:alice_once::bigint, :bob_once::bigint,
    'idempotency_key: two roles with the same key get two jobs');
SELECT is(ARRAY(SELECT owner::text FROM job_engine.jobs WHERE id IN (:alice_once, :bob_once) ORDER BY id),
    ARRAY['t455_alice', 't455_bob'],
    'idempotency_key: ... each owned by the role that submitted it');
SET ROLE t455_alice;
SELECT is(job_engine.submit('t455_h', '{}', idempotency_key => 'once'), :alice_once::bigint,
    'idempotency_key: the same role with the same key gets its own job back');
RESET ROLE;

-- Leave nothing of this file waiting for the files that follow.
CALL pg_temp.drop_handlers('t455_', '0');

SELECT * FROM finish();
