-- demo/scenario.sql: an online shop whose back office runs on job_engine.
--
-- Run by scripts/demo.sh against the database postgres of a throwaway
-- cluster (job_engine preloaded and listed in job_engine.databases):
--
--     psql -X -v ON_ERROR_STOP=1 -v short=0 -f demo/scenario.sql
--
-- short=1 places fewer orders.  with_cron=1 schedules a recurring Command
-- through pg_cron (pg_cron must be preloaded with cron.database_name set to
-- this database); without the variable the script finds out by itself.
-- The script ends with assertions: it exits non-zero if any job did not end
-- the way the story below says it should.  It can be run again on the same
-- database; each run starts a new shop.
--
-- scripts/demo.sh also runs a second session that has run LISTEN job_engine
-- and prints each outcome notification as it arrives ("[outcome +0.84s] job 1
-- charge_payment → retrying (attempt 1)").

\if :{?short}
\else
\set short 0
\endif
\set QUIET on
\pset pager off
\pset footer off
SET client_min_messages = warning;
\set QUIET off

\echo
\echo '################################################################'
\echo '#  job_engine demo: the back office of an online shop          #'
\echo '################################################################'
\echo
\echo 'Placing an order must be fast and must never lose work.  So the order'
\echo 'transaction only records the order, submits *commands* (charge the card,'
\echo 'confirm by e-mail) and publishes an *event* (order.placed) that other parts'
\echo 'of the shop subscribe to.  Background workers inside the server run the'
\echo 'resulting jobs, retry what failed for a transient reason, and keep an'
\echo 'auditable record of every attempt.'
\echo

\set QUIET on
CREATE EXTENSION IF NOT EXISTS job_engine;

-- Schedules need pg_cron in this database.
\if :{?with_cron}
\else
SELECT coalesce(EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron')
                AND current_setting('shared_preload_libraries') LIKE '%pg_cron%'
                AND current_setting('cron.database_name', true) = current_database(),
                false) AS with_cron \gset
\endif
\if :with_cron
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT job_engine.unschedule('nightly-report') \g /dev/null
\endif

-- Jobs and events of earlier runs stay in the history; this run looks only
-- at newer ones.  Subscriptions of an earlier run are removed.
SELECT pg_catalog.set_config('demo.first_job', coalesce(max(id), 0)::text, false)
  FROM job_engine.jobs \g /dev/null
SELECT pg_catalog.set_config('demo.first_event', coalesce(max(id), 0)::text, false)
  FROM job_engine.events \g /dev/null
SELECT job_engine.unsubscribe(id) FROM job_engine.subscriptions
 WHERE handler IN ('reserve_stock', 'record_sale') \g /dev/null

DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;

CREATE TABLE shop.inventory (
    item      text PRIMARY KEY,
    in_stock  integer NOT NULL CHECK (in_stock >= 0)
);
INSERT INTO shop.inventory VALUES ('espresso machine', 10), ('coffee grinder', 10), ('milk jug', 50);

CREATE TABLE shop.orders (
    id        integer PRIMARY KEY,
    customer  text NOT NULL,
    email     text NOT NULL,
    item      text NOT NULL REFERENCES shop.inventory,
    quantity  integer NOT NULL,
    amount    numeric(10,2) NOT NULL,
    coupon    text,
    status    text NOT NULL DEFAULT 'placed',
    placed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    paid_at   timestamptz,
    correlation_id uuid NOT NULL        -- of the order's jobs and event
);

CREATE TABLE shop.payments (
    order_id  integer PRIMARY KEY REFERENCES shop.orders,
    amount    numeric(10,2) NOT NULL,
    job_id    bigint NOT NULL,
    attempt   integer NOT NULL,
    charged_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE shop.emails (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  integer NOT NULL,
    recipient text NOT NULL,
    subject   text NOT NULL,
    job_id    bigint NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE shop.sales (
    item      text PRIMARY KEY,
    sold      integer NOT NULL
);

CREATE TABLE shop.reports (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report    text NOT NULL,
    orders    integer NOT NULL,
    revenue   numeric(10,2) NOT NULL,
    job_id    bigint NOT NULL,
    made_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE shop.coupons (
    code        text PRIMARY KEY,
    percent_off integer NOT NULL,
    valid_until date NOT NULL
);
INSERT INTO shop.coupons VALUES ('SUMMER2019', 20, '2019-09-01');

-------------------------------------------------------------------------------
-- Handlers: ordinary SQL functions taking the job's args (jsonb).  Whatever
-- they write commits together with the job's 'succeeded', or not at all.
-------------------------------------------------------------------------------

-- The payment gateway of this demo is flaky: it answers the first request
-- for every order with a serialization failure (SQLSTATE 40001), a
-- transient error, so job_engine retries the job after a short backoff.
CREATE FUNCTION shop.charge_payment(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    attempt integer := (job_engine.context() ->> 'attempt')::integer;
    o shop.orders;
BEGIN
    SELECT * INTO STRICT o FROM shop.orders WHERE id = (args ->> 'order_id')::integer;
    IF attempt = 1 THEN
        RAISE EXCEPTION 'payment gateway busy, please retry'
            USING ERRCODE = '40001', DETAIL = format('Order %s, %s EUR.', o.id, o.amount);
    END IF;
    INSERT INTO shop.payments (order_id, amount, job_id, attempt)
    VALUES (o.id, o.amount, job_engine.current_job_id(), attempt);
    UPDATE shop.orders SET status = 'paid', paid_at = clock_timestamp() WHERE id = o.id;
    RETURN jsonb_build_object('charged', o.amount, 'currency', 'EUR');
END
$$;

CREATE FUNCTION shop.reserve_stock(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    left_over integer;
BEGIN
    UPDATE shop.inventory SET in_stock = in_stock - (args ->> 'quantity')::integer
     WHERE item = args ->> 'item'
    RETURNING in_stock INTO STRICT left_over;
    RETURN jsonb_build_object('item', args ->> 'item', 'left_in_stock', left_over);
END
$$;

CREATE FUNCTION shop.send_email(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shop.emails (order_id, recipient, subject, job_id)
    VALUES ((args ->> 'order_id')::integer, args ->> 'to', args ->> 'subject',
            job_engine.current_job_id());
    RETURN jsonb_build_object('sent_to', args ->> 'to');
END
$$;

CREATE FUNCTION shop.record_sale(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shop.sales AS s VALUES (args ->> 'item', (args ->> 'quantity')::integer)
    ON CONFLICT (item) DO UPDATE SET sold = s.sold + EXCLUDED.sold;
    RETURN NULL;
END
$$;

-- Rejects expired coupons with SQLSTATE 22023 (invalid_parameter_value): a
-- data error, which job_engine treats as permanent.  No retry would help.
CREATE FUNCTION shop.apply_coupon(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c shop.coupons;
BEGIN
    SELECT * INTO STRICT c FROM shop.coupons WHERE code = args ->> 'coupon';
    IF c.valid_until < current_date THEN
        RAISE EXCEPTION 'coupon % expired on %', c.code, c.valid_until
            USING ERRCODE = '22023',
                  HINT = 'Ask the customer for a valid coupon.';
    END IF;
    RETURN jsonb_build_object('percent_off', c.percent_off);
END
$$;

-- The compensation of apply_coupon: job_engine runs it when an apply_coupon
-- job ends failed or aborted, with the failed job's id, args and error.
CREATE FUNCTION shop.coupon_rejected(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    o shop.orders;
BEGIN
    SELECT * INTO STRICT o FROM shop.orders WHERE id = (args -> 'args' ->> 'order_id')::integer;
    INSERT INTO shop.emails (order_id, recipient, subject, job_id)
    VALUES (o.id, o.email, format('Coupon %s could not be applied to order %s', o.coupon, o.id),
            job_engine.current_job_id());
    RETURN jsonb_build_object('compensated_job', args -> 'job_id');
END
$$;

-- The nightly sales report: pg_cron submits it every night at 03:00.
CREATE FUNCTION shop.daily_report(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r shop.reports;
BEGIN
    INSERT INTO shop.reports (report, orders, revenue, job_id)
    SELECT args ->> 'report', count(*), coalesce(sum(amount), 0), job_engine.current_job_id()
      FROM shop.orders
    RETURNING * INTO r;
    RETURN jsonb_build_object('orders', r.orders, 'revenue', r.revenue);
END
$$;

-- max_attempts 5, first retry after 200 ms (then 400 ms, 800 ms, ...).
SELECT job_engine.register_handler('charge_payment', 'shop.charge_payment(jsonb)',
                                   max_attempts => 5, backoff_base => '200 milliseconds') \g /dev/null
SELECT job_engine.register_handler('reserve_stock', 'shop.reserve_stock(jsonb)') \g /dev/null
SELECT job_engine.register_handler('send_email', 'shop.send_email(jsonb)',
                                   queue => 'email') \g /dev/null
SELECT job_engine.register_handler('record_sale', 'shop.record_sale(jsonb)') \g /dev/null
SELECT job_engine.register_handler('coupon_rejected', 'shop.coupon_rejected(jsonb)') \g /dev/null
SELECT job_engine.register_handler('apply_coupon', 'shop.apply_coupon(jsonb)',
                                   compensate_with => 'coupon_rejected') \g /dev/null
SELECT job_engine.register_handler('daily_report', 'shop.daily_report(jsonb)',
                                   queue => 'reports') \g /dev/null

-- Subscriptions: every order.placed event creates one job per subscription.
-- 'order.*' is a prefix pattern: it would also match order.cancelled.
SELECT job_engine.subscribe('order.placed', 'reserve_stock') \g /dev/null
SELECT job_engine.subscribe('order.*', 'record_sale') \g /dev/null

-- What the shop's application calls: one transaction records the order,
-- submits the payment, publishes order.placed and submits the confirmation
-- e-mail.  If the transaction rolls back, none of the jobs exist.  The e-mail
-- declares that it depends on the payment and on the stock reservation (a job
-- of the event), so it is sent only once both succeeded.
CREATE FUNCTION shop.place_order(order_id integer, customer text, email text,
                                 item text, quantity integer, amount numeric,
                                 coupon text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    corr uuid := gen_random_uuid();     -- ties the order's jobs and event together
    charge bigint;
    placed bigint;
    reserve bigint;
BEGIN
    INSERT INTO shop.orders (id, customer, email, item, quantity, amount, coupon, correlation_id)
    VALUES (order_id, customer, email, item, quantity, amount, coupon, corr);
    charge := job_engine.submit('charge_payment', jsonb_build_object('order_id', order_id),
                                correlation_id => corr);
    placed := job_engine.publish('order.placed',
                                 jsonb_build_object('order_id', order_id, 'item', item,
                                                    'quantity', quantity),
                                 correlation_id => corr);
    SELECT j.id INTO STRICT reserve FROM job_engine.jobs j
     WHERE j.event_id = placed AND j.handler = 'reserve_stock';
    PERFORM job_engine.submit('send_email',
                              jsonb_build_object('order_id', order_id, 'to', email,
                                                 'subject', format('Order %s confirmed', order_id)),
                              correlation_id => corr, depends_on => ARRAY[charge, reserve]);
    IF coupon IS NOT NULL THEN
        PERFORM job_engine.submit('apply_coupon',
                                  jsonb_build_object('order_id', order_id, 'coupon', coupon),
                                  correlation_id => corr);
    END IF;
    RETURN order_id;
END
$$;
\set QUIET off

\echo '== 1. Handlers registered (job_engine.handlers)'
SELECT name, fn, queue, max_attempts, backoff_base, compensate_with
  FROM job_engine.handlers
 WHERE fn::text LIKE 'shop.%'
 ORDER BY name;
\echo '-- and the event subscriptions (job_engine.subscriptions)'
SELECT s.event_type, s.handler
  FROM job_engine.subscriptions s
 WHERE s.handler IN ('reserve_stock', 'record_sale')
 ORDER BY s.id;

\echo '== 2. Customers place orders.  Each call returns at once: the work is only submitted.'
\echo '   (scripts/demo.sh runs a second session, LISTEN job_engine, that prints each'
\echo '   outcome as it is notified: the [outcome] lines.)'
SELECT shop.place_order(1001, 'Ada',    'ada@example.com',    'espresso machine', 1, 349.00);
SELECT shop.place_order(1002, 'Brian',  'brian@example.com',  'milk jug',         2,  29.80, coupon => 'SUMMER2019');
\if :short
\else
SELECT shop.place_order(1003, 'Chen',   'chen@example.com',   'coffee grinder',   1, 119.00);
SELECT shop.place_order(1004, 'Dalia',  'dalia@example.com',  'milk jug',         1,  14.90);
SELECT shop.place_order(1005, 'Emeka',  'emeka@example.com',  'espresso machine', 2, 698.00);
\endif
\echo '   Watch the outcomes arrive: each payment fails once (40001) and is retried'
\echo '   about 200 ms later; stock reservations, sales records and confirmation'
\echo '   e-mails follow, each e-mail only after its payment and reservation.'
SELECT pg_sleep(1.5) \g /dev/null

\echo
\echo '== 3. A marketing e-mail scheduled for three days from now, then cancelled'
\echo '   with job_engine.abort() before it ever ran: it ends "aborted" with the reason.'
SELECT job_engine.submit('send_email',
                         '{"order_id": 1001, "to": "ada@example.com", "subject": "How do you like your espresso machine?"}',
                         run_at => now() + interval '3 days') AS review_job \gset
SELECT job_engine.abort(:review_job, 'customer unsubscribed from marketing e-mails') AS aborted;
SELECT pg_sleep(0.4) \g /dev/null

\if :with_cron
\echo
\echo '== 4. A recurring Command: the nightly sales report, scheduled through pg_cron'
\echo '   job_engine.schedule() returns the pg_cron job id.  The cron.job row runs as the'
\echo '   calling role, in this database, job_engine.submit_from_schedule(): a submit of'
\echo '   the handler whose job names the schedule (jobs.schedule).'
SELECT job_engine.schedule('nightly-report', '0 3 * * *', 'daily_report',
                           '{"report": "daily sales"}') AS cron_job_id \gset
SELECT jobid, jobname, schedule, command, database, username, active
  FROM cron.job WHERE jobid = :cron_job_id;
SELECT set_config('demo.cron_row_ok',
                  EXISTS (SELECT 1 FROM cron.job
                           WHERE jobid = :cron_job_id AND jobname = 'nightly-report'
                             AND schedule = '0 3 * * *' AND username = current_user
                             AND database = current_database() AND active
                             AND command = format('SELECT job_engine.submit_from_schedule(%L, %L, %L::jsonb)',
                                                  'nightly-report', 'daily_report',
                                                  '{"report": "daily sales"}'))::text,
                  false) \g /dev/null
\echo '-- pg_cron will run that command at 03:00.  Running the same command once now'
\echo '   submits a daily_report job at once (the value is its job id):'
SELECT command FROM cron.job WHERE jobid = :cron_job_id \gexec
\endif

\echo
\echo '== 5. Waiting for the workers (at most 30 s) ...'
\set QUIET on
DO $$
DECLARE
    first_job bigint := current_setting('demo.first_job')::bigint;
    deadline timestamptz := clock_timestamp() + interval '30 seconds';
    waiting bigint;
BEGIN
    LOOP
        SELECT count(*) INTO waiting FROM job_engine.jobs
         WHERE id > first_job AND state IN ('created', 'running', 'retrying');
        EXIT WHEN waiting = 0;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'demo: % job(s) still unfinished after 30 seconds', waiting
                USING HINT = 'Is job_engine in shared_preload_libraries and this database in job_engine.databases?';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
-- The listener polls every 0.2 s: let it print the last outcomes first.
SELECT pg_sleep(0.5) \g /dev/null
\set QUIET off
\echo '   ... every job has finished.'

\echo
\echo '== 6. Every job and how it ended (job_engine.jobs)'
\echo '   charge_payment: 2 attempts (a transient 40001, then success).'
\echo '   reserve_stock, record_sale: created by the order.placed events.'
\echo '   send_email: the confirmation ran only after its payment and reservation;'
\echo '     the marketing e-mail was aborted before it ran.'
\echo '   apply_coupon: failed at once (22023 is permanent); coupon_rejected is its compensation.'
\if :with_cron
\echo '   daily_report: submitted by the command of the nightly-report schedule.'
\endif
SELECT id, handler, state, attempts,
       coalesce(args ->> 'order_id', args -> 'args' ->> 'order_id') AS "order",
       CASE WHEN event_id IS NOT NULL THEN 'event ' || event_id
            WHEN parent_job_id IS NOT NULL THEN 'job ' || parent_job_id
            ELSE 'submit' END AS created_by,
       last_error, abort_reason,
       round(extract(epoch FROM duration) * 1000) AS duration_ms
  FROM job_engine.jobs
 WHERE id > current_setting('demo.first_job')::bigint
 ORDER BY id;

\echo '== 7. The attempts of the payment of order 1001 (job_engine.attempts)'
\echo '   Attempt 1 rolled back and was recorded with its error; attempt 2 ran after the backoff.'
SELECT a.attempt, a.outcome, a.sqlstate, a.message, a.detail,
       round(extract(epoch FROM a.started_at - lag(a.finished_at) OVER (ORDER BY a.attempt)) * 1000)
           AS backoff_ms,
       round(extract(epoch FROM a.duration) * 1000) AS duration_ms
  FROM job_engine.attempts a
  JOIN job_engine.jobs j ON j.id = a.job_id
 WHERE j.id > current_setting('demo.first_job')::bigint
   AND j.handler = 'charge_payment' AND j.args ->> 'order_id' = '1001'
 ORDER BY a.attempt;

\echo '== 8. The events (job_engine.events): each order.placed made 2 jobs, one per subscription'
SELECT id, event_type, payload, jobs_created
  FROM job_engine.events
 WHERE id > current_setting('demo.first_event')::bigint
 ORDER BY id;

\echo '== 9. Everything order 1002 set in motion, by cause: job_engine.trace(correlation_id)'
SELECT repeat('    ', depth) || kind || ' ' || id || ' ' || name AS what, state, cause
  FROM job_engine.trace((SELECT correlation_id FROM shop.orders WHERE id = 1002));

\echo '== 10. What the handlers did to the shop'
\echo '-- shop.orders'
SELECT id, customer, item, quantity, amount, coupon, status FROM shop.orders ORDER BY id;
\echo '-- shop.payments: one per order, each made by attempt 2 (attempt 1 was rolled back)'
SELECT order_id, amount, job_id, attempt FROM shop.payments ORDER BY order_id;
\echo '-- shop.inventory and shop.sales (written by the two subscribers of order.placed)'
SELECT i.item, i.in_stock, coalesce(s.sold, 0) AS sold
  FROM shop.inventory i LEFT JOIN shop.sales s USING (item)
 ORDER BY i.item;
\echo '-- shop.emails: confirmations sent after payment, the coupon notice; no marketing e-mail'
SELECT e.order_id, e.recipient, e.subject,
       CASE WHEN e.subject LIKE 'Order %' THEN e.sent_at > o.paid_at END AS sent_after_payment
  FROM shop.emails e JOIN shop.orders o ON o.id = e.order_id
 ORDER BY e.order_id, e.id;

\if :with_cron
\echo '-- shop.reports: made by the daily_report job'
SELECT report, orders, revenue, job_id FROM shop.reports ORDER BY id;
\endif

\echo '== 11. The executors serving this database (job_engine.workers)'
SELECT pid, database, state FROM job_engine.workers WHERE database = current_database() ORDER BY pid;

\if :with_cron
\echo '== 12. The schedule is no longer needed: job_engine.unschedule() removes the cron.job row'
SELECT job_engine.unschedule('nightly-report') AS unscheduled;
SELECT count(*) AS "cron.job rows named nightly-report" FROM cron.job WHERE jobname = 'nightly-report';
\endif

-------------------------------------------------------------------------------
-- Assertions: the demo fails unless every outcome is the expected one.
-------------------------------------------------------------------------------
\set QUIET on
SELECT set_config('demo.with_cron', :'with_cron', false) \g /dev/null
DO $$
DECLARE
    first_job bigint := current_setting('demo.first_job')::bigint;
    first_event bigint := current_setting('demo.first_event')::bigint;
    n_orders integer := (SELECT count(*) FROM shop.orders);
    problems text[] := '{}';
    coupon_job bigint;
    r record;
BEGIN
    -- Every order: payment succeeded on attempt 2 after a 40001 on attempt 1.
    FOR r IN SELECT j.id, j.state, j.attempts,
                    (SELECT string_agg(a.attempt || ':' || a.outcome || ':' || coalesce(a.sqlstate, '-'),
                                       ',' ORDER BY a.attempt)
                       FROM job_engine.attempts a WHERE a.job_id = j.id) AS history
               FROM job_engine.jobs j
              WHERE j.id > first_job AND j.handler = 'charge_payment'
    LOOP
        IF r.state <> 'succeeded' OR r.attempts <> 2
           OR r.history IS DISTINCT FROM '1:failed:40001,2:succeeded:-' THEN
            problems := problems || format('charge_payment job %s: %s after %s attempt(s) [%s]',
                                           r.id, r.state, r.attempts, r.history);
        END IF;
    END LOOP;
    IF (SELECT count(*) FROM shop.payments WHERE attempt = 2) <> n_orders
       OR (SELECT count(*) FROM shop.payments) <> n_orders THEN
        problems := problems || 'not every order has exactly one payment, made by attempt 2'::text;
    END IF;
    IF EXISTS (SELECT 1 FROM shop.orders WHERE status <> 'paid') THEN
        problems := problems || 'an order is not paid'::text;
    END IF;

    -- One order.placed event per order, each fanned out to its 2 subscribers.
    IF (SELECT count(*) FROM job_engine.events
         WHERE id > first_event AND event_type = 'order.placed' AND jobs_created = 2) <> n_orders
       OR (SELECT count(*) FROM job_engine.events WHERE id > first_event) <> n_orders THEN
        problems := problems || 'expected one order.placed event with 2 jobs per order'::text;
    END IF;
    IF (SELECT count(*) FROM job_engine.jobs
         WHERE id > first_job AND handler IN ('reserve_stock', 'record_sale')
           AND state = 'succeeded' AND event_id > first_event) <> 2 * n_orders THEN
        problems := problems || 'not every reserve_stock/record_sale event job succeeded'::text;
    END IF;
    IF (SELECT sum(in_stock) FROM shop.inventory) <> 70 - (SELECT sum(quantity) FROM shop.orders)
       OR (SELECT sum(sold) FROM shop.sales) <> (SELECT sum(quantity) FROM shop.orders) THEN
        problems := problems || 'inventory or sales do not match the orders'::text;
    END IF;

    -- Confirmations: one per order, each after its payment.
    IF (SELECT count(*) FROM job_engine.jobs
         WHERE id > first_job AND handler = 'send_email' AND state = 'succeeded') <> n_orders THEN
        problems := problems || 'not every confirmation e-mail job succeeded'::text;
    END IF;
    IF (SELECT count(*) FROM shop.emails e JOIN shop.orders o ON o.id = e.order_id
         WHERE e.subject LIKE 'Order % confirmed' AND e.sent_at > o.paid_at) <> n_orders THEN
        problems := problems || 'confirmation e-mails are missing or were sent before payment'::text;
    END IF;

    -- The expired coupon: failed on its only attempt, error recorded ...
    SELECT j.id, j.state, j.attempts, j.last_error, a.sqlstate, a.hint INTO r
      FROM job_engine.jobs j JOIN job_engine.attempts a ON a.job_id = j.id
     WHERE j.id > first_job AND j.handler = 'apply_coupon';
    IF NOT FOUND OR r.state <> 'failed' OR r.attempts <> 1 OR r.sqlstate <> '22023'
       OR r.last_error NOT LIKE 'coupon SUMMER2019 expired%' OR r.hint IS NULL THEN
        problems := problems || format('apply_coupon: expected failed after 1 attempt with 22023, got %s', r);
    END IF;
    coupon_job := r.id;
    -- ... and compensated: coupon_rejected ran once for it and sent its notice.
    IF (SELECT count(*) FROM job_engine.jobs
         WHERE id > first_job AND handler = 'coupon_rejected' AND state = 'succeeded'
           AND parent_job_id = coupon_job) <> 1
       OR (SELECT count(*) FROM shop.emails WHERE subject LIKE 'Coupon SUMMER2019 %') <> 1 THEN
        problems := problems || 'the failed apply_coupon job was not compensated exactly once'::text;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM job_engine.trace((SELECT correlation_id FROM shop.orders WHERE id = 1002)) t
                    WHERE t.kind = 'job' AND t.name = 'coupon_rejected' AND t.cause = 'compensation'
                      AND t.parent_id = coupon_job) THEN
        problems := problems || 'trace() of order 1002 does not show the compensation'::text;
    END IF;
    IF (SELECT count(*) FROM shop.emails) <> n_orders + 1 THEN
        problems := problems || format('expected %s e-mails, found %s', n_orders + 1,
                                       (SELECT count(*) FROM shop.emails));
    END IF;

    -- The cancelled marketing e-mail: aborted, never attempted, reason kept.
    SELECT j.state, j.attempts, j.abort_reason INTO r
      FROM job_engine.jobs j
     WHERE j.id > first_job AND j.handler = 'send_email' AND j.args ->> 'subject' LIKE 'How do%';
    IF NOT FOUND OR r.state <> 'aborted' OR r.attempts <> 0
       OR r.abort_reason IS DISTINCT FROM 'customer unsubscribed from marketing e-mails' THEN
        problems := problems || format('marketing e-mail: expected aborted, got %s', r);
    END IF;

    -- The schedule: its command submitted one daily_report job, which counted
    -- every order; unschedule() removed the cron.job row.
    IF current_setting('demo.with_cron')::boolean THEN
        IF current_setting('demo.cron_row_ok', true) IS DISTINCT FROM 'true' THEN
            problems := problems || 'schedule() did not create the expected cron.job row'::text;
        END IF;
        IF (SELECT count(*) FROM job_engine.jobs
             WHERE id > first_job AND handler = 'daily_report' AND state = 'succeeded'
               AND schedule = 'nightly-report'
               AND (result ->> 'orders')::integer = n_orders) <> 1
           OR (SELECT count(*) FROM shop.reports WHERE orders = n_orders) <> 1 THEN
            problems := problems || 'the daily_report job did not succeed exactly once'::text;
        END IF;
        IF EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'nightly-report') THEN
            problems := problems || 'unschedule() left the nightly-report cron job behind'::text;
        END IF;
    END IF;

    -- Nothing else: every other job succeeded.
    FOR r IN SELECT id, handler, state FROM job_engine.jobs
              WHERE id > first_job
                AND NOT (state = 'succeeded' OR (handler = 'apply_coupon' AND state = 'failed')
                         OR (handler = 'send_email' AND state = 'aborted'))
    LOOP
        problems := problems || format('unexpected: job %s (%s) is %s', r.id, r.handler, r.state);
    END LOOP;

    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'demo: % unexpected outcome(s)', cardinality(problems)
            USING DETAIL = array_to_string(problems, E'\n');
    END IF;
END
$$;
\set QUIET off

\echo
\echo 'All outcomes are as expected: payments retried to success, events fanned'
\echo 'out to their subscribers, a permanent error recorded as failed and'
\echo 'compensated, a cancelled job aborted with its reason.'
\if :with_cron
\echo 'The nightly report was scheduled through pg_cron, ran once, and was unscheduled.'
\endif
