#!/usr/bin/env bash
#
# bench/drain.sh: the quick benchmark, a subset of bench/run.sh: drain
# throughput with one executor count (strict mode, SQL no-op handler),
# latency (submit -> handler start, submit -> 'succeeded' notification) and
# submit rates.  About a minute.  See bench/README.md.
#
#   bench/drain.sh
#   JE_BENCH_WORKERS=4 bench/drain.sh
#
# Environment:
#   JE_BENCH_WORKERS        job_engine.max_workers (default 2)
#   JE_BENCH_JOBS           jobs submitted with submit_many and drained (default 20000)
#   JE_BENCH_RTT_JOBS       round trips measured by notify_rtt (default 500)
#   JE_BENCH_CLIENTS        pgbench clients of the submit rates (default "1 4")
#   JE_BENCH_PORT, JE_BENCH_KEEP, JE_BENCH_INSTALL, JE_BENCH_REF, PG_CONFIG:
#                           as for bench/run.sh
#
# Any other JE_BENCH_* variable of bench/run.sh applies too.

set -euo pipefail

workers="${JE_BENCH_WORKERS:-2}"
export JE_BENCH_WORKERS="$workers"
export JE_BENCH_EXECUTORS="${JE_BENCH_EXECUTORS:-$workers}"
export JE_BENCH_GROUPS="${JE_BENCH_GROUPS:-1}"
export JE_BENCH_HANDLERS="${JE_BENCH_HANDLERS:-sql}"
export JE_BENCH_CLIENTS="${JE_BENCH_CLIENTS:-1 4}"
export JE_BENCH_STAGES="${JE_BENCH_STAGES:-drain latency submit}"
export JE_BENCH_FSYNC_TEST="${JE_BENCH_FSYNC_TEST:-0}"
export JE_BENCH_PLOT="${JE_BENCH_PLOT:-0}"

exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$@"
