-- purge(): bad input, and which jobs a purge deletes.  The jobs here really
-- run, so the file commits as it goes and cleans up after itself.
SET client_min_messages = warning;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(18);

CALL pg_temp.drop_handlers('tap_purge', '0 seconds');
DROP SCHEMA IF EXISTS tap_purge CASCADE;
DROP ROLE IF EXISTS tap_purge_user;
CREATE SCHEMA tap_purge;
CREATE FUNCTION tap_purge.ok(args jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT args $$;
CREATE ROLE tap_purge_user;

-- bad input
SELECT throws_ok($$SELECT job_engine.purge(NULL)$$,
    '22004', NULL, 'older_than NULL is refused (22004)');
SELECT throws_ok($$SELECT job_engine.purge('-1 second')$$,
    '22023', NULL, 'a negative older_than is refused (22023)');
SELECT throws_ok($$SELECT job_engine.purge('-1 day +1 hour')$$,
    '22023', NULL, 'an older_than that sums to a negative duration is refused (22023)');
SELECT throws_ok($$SELECT job_engine.purge('200 years')$$,
    '22015', NULL, 'an older_than beyond 100 years is refused (22015)');

-- some finished jobs of two roles, and one still waiting
SELECT job_engine.register_handler('tap_purge_h', 'tap_purge.ok(jsonb)') IS NULL AS registered \gset
SET ROLE tap_purge_user;
SELECT array_agg(id) AS mine
  FROM job_engine.submit_many('tap_purge_h', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[]) AS t(id) \gset
SELECT job_engine.submit('tap_purge_h', run_at => now() + interval '1 hour') AS waiting_job \gset
RESET ROLE;
SELECT job_engine.submit('tap_purge_h') AS su_job \gset

SELECT ok(pg_temp.wait_until(format($$SELECT count(*) = 4 FROM job_engine.jobs
                                       WHERE (id = ANY (%L::bigint[]) OR id = %s)
                                         AND state = 'succeeded'$$, :'mine', :su_job)),
    'the four jobs succeed');

SET ROLE tap_purge_user;
SELECT is(job_engine.purge('1 hour'), 0::bigint, 'nothing finished an hour ago');
SELECT is(job_engine.purge('0'), 3::bigint, 'a role purges its own finished jobs only');
RESET ROLE;

SELECT is((SELECT count(*) FROM job_engine._jobs WHERE id IN (SELECT unnest(:'mine'::bigint[]))), 0::bigint,
    'the purged jobs are gone');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id IN (SELECT unnest(:'mine'::bigint[]))), 0::bigint,
    'their attempts went with them');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :waiting_job), 'created',
    'a waiting job is never purged');
SELECT is((SELECT state::text FROM job_engine.jobs WHERE id = :su_job), 'succeeded',
    'another role''s finished job is kept');
SELECT is((SELECT count(*) FROM job_engine._attempts WHERE job_id = :su_job), 1::bigint,
    'with its attempt');

SET ROLE tap_purge_user;
SELECT is(job_engine.purge('0'), 0::bigint, 'purging again deletes nothing');
SELECT ok(job_engine.abort(:waiting_job, 'done'), 'abort the waiting job');
RESET ROLE;

SELECT ok(job_engine.purge('1 hour') >= 0, 'a superuser purge with a long horizon runs');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE id IN (:waiting_job, :su_job)), 2::bigint,
    'and keeps jobs that finished recently');
SELECT ok(job_engine.purge('0') >= 2, 'a superuser purges the finished jobs of every role');
SELECT is((SELECT count(*) FROM job_engine._jobs WHERE id IN (:waiting_job, :su_job)), 0::bigint,
    'the superuser''s and the role''s finished jobs are gone');

CALL pg_temp.drop_handlers('tap_purge');
DROP SCHEMA tap_purge CASCADE;
DROP ROLE tap_purge_user;
SELECT * FROM finish();
