// bench/graphile/drain.js: one drain of no-op jobs with graphile-worker, the
// counterpart of a job_engine drain in bench/compare.sh.
//
//   node drain.js JOBS CONCURRENCY MODE
//
// MODE is "strict" (graphile-worker's defaults: each worker fetches its own
// job and completes it in its own statement) or "batched" (a local queue of
// GW_LOCAL_QUEUE jobs fetched per statement, completions batched over
// GW_BATCH_DELAY ms).  The connection comes from the libpq environment
// (PGHOST, PGPORT, PGUSER, PGDATABASE).
//
// The jobs are added first, in one call of add_jobs(), due in a day, and
// the runner started; then it prints "ready CPU_MS" (its own CPU time so far)
// and waits for a line on stdin, so that the caller can start counting CPU
// time.  Then one statement makes all jobs due and tells the runner of them
// as add_jobs() would: the start.  The end is the first poll (every POLL_MS,
// a statement of its own, so no snapshot stays open) that finds no job
// left.  Prints "jobs seconds jobs_per_s".
"use strict";

const { run, runMigrations } = require("graphile-worker");
const { Pool } = require("pg");

const POLL_MS = 5;

function die(msg) {
  console.error(`drain.js: ${msg}`);
  process.exit(1);
}

const [jobsArg, concArg, mode] = process.argv.slice(2);
const jobs = Number(jobsArg);
const concurrency = Number(concArg);
if (!Number.isInteger(jobs) || jobs < 1) die(`JOBS must be a positive integer, got '${jobsArg}'`);
if (!Number.isInteger(concurrency) || concurrency < 1) die(`CONCURRENCY must be a positive integer, got '${concArg}'`);
if (mode !== "strict" && mode !== "batched") die(`MODE is strict or batched, got '${mode}'`);

const localQueue = Number(process.env.GW_LOCAL_QUEUE || 256);
const batchDelay = Number(process.env.GW_BATCH_DELAY || 10);

const worker = { concurrentJobs: concurrency, pollInterval: 2000 };
if (mode === "batched") {
  worker.localQueue = { size: localQueue };
  worker.completeJobBatchDelay = batchDelay;
  worker.failJobBatchDelay = batchDelay;
}

async function main() {
  // The runner's pool, and one connection for the setup and the polls.
  const pool = new Pool({ max: concurrency + 2 });
  const admin = new Pool({ max: 1 });
  const q = (sql, args) => admin.query(sql, args);

  await runMigrations({ pgPool: pool, logger: quietLogger() });
  await q("TRUNCATE graphile_worker._private_jobs");
  await q(
    `SELECT count(*) FROM graphile_worker.add_jobs(
       array_fill(ROW('noop', '{}'::json, NULL, now() + interval '1 day', NULL, NULL, NULL, NULL)::graphile_worker.job_spec, ARRAY[$1::int]))`,
    [jobs]
  );
  await q("CHECKPOINT");

  let failed = 0;
  const runner = await run({
    pgPool: pool,
    noHandleSignals: true,
    logger: quietLogger(),
    taskList: { noop: async () => {} },
    preset: { worker },
  });
  runner.events.on("job:failed", () => failed++);

  const cpu = process.cpuUsage();
  console.log(`ready ${((cpu.user + cpu.system) / 1000).toFixed(1)}`);
  await new Promise((res) => process.stdin.once("data", res));
  process.stdin.pause();

  const t0 = process.hrtime.bigint();
  await q(
    `WITH d AS (UPDATE graphile_worker._private_jobs SET run_at = now() RETURNING 1)
     SELECT pg_notify('jobs:insert', '{"r":0,"count":' || count(*) || '}') FROM d`
  );
  let left;
  for (;;) {
    const r = await q("SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS left");
    left = r.rows[0].left;
    if (!left) break;
    if (Number(process.hrtime.bigint() - t0) / 1e9 > Number(process.env.GW_TIMEOUT || 120)) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await runner.stop();
  await pool.end();
  if (left) {
    const r = await q("SELECT count(*)::int AS n FROM graphile_worker._private_jobs");
    await admin.end();
    die(`${r.rows[0].n} of ${jobs} jobs left after ${seconds.toFixed(1)} s`);
  }
  await admin.end();
  if (failed > 0) die(`${failed} jobs failed`);
  console.log(`${jobs} ${seconds.toFixed(4)} ${(jobs / seconds).toFixed(1)}`);
}

// Warnings and errors only: the runner logs a line per job otherwise.
function quietLogger() {
  const { Logger } = require("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
  });
}

main().catch((e) => die(e.stack || String(e)));
