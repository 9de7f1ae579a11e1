-- The CONTEXT of an error from a public function keeps the caller's frames
-- only (src/gate.c).  A frame of an internal function may span several
-- lines (a statement written over several lines, quoted in the frame): none
-- of its lines may be left behind, as a fragment of the engine's code that
-- tells the caller nothing.  One transaction, rolled back.
BEGIN;
\ir ../fixtures/pgtap_helpers.sql
SELECT plan(3);


-- _require_name(reason, 'reason', blank_hint => ...) is called over two lines.
SELECT unalike(pg_temp.context_of($$SELECT job_engine.abort(1, NULL)$$),
    '%blank_hint%', 'a NULL reason''s error shows no line of the internal statement that checked it');
SELECT unalike(pg_temp.context_of($$SELECT job_engine.abort(1, repeat('r', 300))$$),
    '%blank_hint%', 'nor does a reason that is too long');
SELECT is(pg_temp.context_of($$SELECT job_engine.abort(1, NULL)$$),
    regexp_replace(pg_temp.context_of($$SELECT job_engine.abort(1, NULL) FROM pg_catalog.int4in('x')$$),
                   ' FROM pg_catalog.int4in\(''x''\)', ''),
    'only the caller''s own frames are left, as for an error of a built-in function there');

SELECT * FROM finish();
ROLLBACK;
