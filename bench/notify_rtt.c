/*
 * notify_rtt.c
 *	  Client round trip of job_engine: submit a job, then wait for the
 *	  'succeeded' notification of that job on channel job_engine.
 *
 * Usage: notify_rtt [-n N] [-w WARMUP] [-h handler] [-t timeout_s]
 *                   [-p pause_ms] [-o samples_file] "conninfo"
 *
 * One connection LISTENs on job_engine.  For each of N jobs it submits
 * (autocommit, so the job is committed when the call returns), then waits
 * with select() on the connection's socket until a notification whose
 * payload names that job_id with state "succeeded" arrives.  The time from
 * just before the submit is sent to the arrival of the notification is the
 * round trip.  WARMUP extra jobs run first and are not counted.  With
 * -p the client sleeps pause_ms after each round trip, so that the next
 * submit finds every executor asleep again.
 *
 * Prints one line per figure ("name value") for scripts: the round trip and
 * the submit call alone (until PQexecParams returns: submit and commit),
 * and the ids of the first and last measured jobs.  With -o it also writes
 * one line per measured job: "job_id round_trip_ms submit_ms xid" (-1: lost;
 * xid is the submitting transaction's, for its commit timestamp).
 * Exits 0 if every notification arrived, 1 otherwise.
 *
 * Build: cc -O2 -o notify_rtt notify_rtt.c -I$(pg_config --includedir) -lpq
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define USAGE "usage: %s [-n N] [-w WARMUP] [-h handler] [-t timeout_s] [-p pause_ms] [-o samples_file] conninfo\n"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
die(PGconn *conn, const char *what)
{
	fprintf(stderr, "notify_rtt: %s: %s", what, conn ? PQerrorMessage(conn) : "\n");
	if (conn)
		PQfinish(conn);
	exit(2);
}

/*
 * Finds "key" in a JSON object text and returns a pointer to its value
 * (after the colon and any blanks), or NULL.  Enough for the flat payload
 * job_engine sends: {"job_id" : 1, "state" : "succeeded", ...}.
 */
static const char *
json_value(const char *json, const char *key)
{
	char		quoted[64];
	const char *p;

	snprintf(quoted, sizeof(quoted), "\"%s\"", key);
	p = strstr(json, quoted);
	if (p == NULL)
		return NULL;
	p += strlen(quoted);
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	return p;
}

/* True when the payload reports job `job_id` in state "succeeded". */
static int
is_success_of(const char *payload, long long job_id)
{
	const char *id = json_value(payload, "job_id");
	const char *state = json_value(payload, "state");

	return id != NULL && state != NULL &&
		strtoll(id, NULL, 10) == job_id &&
		strncmp(state, "\"succeeded\"", 11) == 0;
}

/* Drains pending notifications; true if one is the success of job_id. */
static int
drain_notifications(PGconn *conn, long long job_id)
{
	PGnotify   *n;
	int			found = 0;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (strcmp(n->relname, "job_engine") == 0 && is_success_of(n->extra, job_id))
			found = 1;
		PQfreemem(n);
	}
	return found;
}

/*
 * Submits one job and returns the milliseconds until its success arrived
 * (-1: timeout).  *job_id_out gets the job's id, *submit_ms the time the
 * submit call itself took.
 */
static double
round_trip(PGconn *conn, const char *handler, double timeout_ms,
		   long long *job_id_out, double *submit_ms, char *xid_out, size_t xid_size)
{
	const char *params[1] = {handler};
	PGresult   *res;
	long long	job_id;
	double		t0 = now_ms();
	double		deadline = t0 + timeout_ms;

	/* The transaction id, for the commit time (track_commit_timestamp). */
	res = PQexecParams(conn, "SELECT job_engine.submit($1), pg_current_xact_id()",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		die(conn, "submit failed");
	*submit_ms = now_ms() - t0;
	job_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*job_id_out = job_id;
	snprintf(xid_out, xid_size, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);

	for (;;)
	{
		int			sock = PQsocket(conn);
		fd_set		fds;
		struct timeval tv;
		double		left;
		int			rc;

		if (drain_notifications(conn, job_id))
			return now_ms() - t0;
		left = deadline - now_ms();
		if (left <= 0)
			return -1;
		FD_ZERO(&fds);
		FD_SET(sock, &fds);
		tv.tv_sec = (long) (left / 1000);
		tv.tv_usec = (long) ((left - tv.tv_sec * 1000.0) * 1000);
		rc = select(sock + 1, &fds, NULL, NULL, &tv);
		if (rc < 0 && errno != EINTR)
		{
			perror("notify_rtt: select");
			exit(2);
		}
		if (rc > 0 && !PQconsumeInput(conn))
			die(conn, "connection lost");
	}
}

/* Sleeps ms milliseconds (nothing for 0). */
static void
sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t) (ms / 1000);
	ts.tv_nsec = (long) ((ms - ts.tv_sec * 1000.0) * 1e6);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double
percentile(const double *sorted, int n, double p)
{
	int			rank = (int) (p * n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

int
main(int argc, char **argv)
{
	int			n = 500;
	int			warmup = 20;
	const char *handler = "noop";
	double		timeout_ms = 10000;
	double		pause_ms = 0;
	const char *samples_path = NULL;
	FILE	   *samples = NULL;
	const char *conninfo;
	PGconn	   *conn;
	PGresult   *res;
	double	   *rtt;
	double	   *sub;
	long long	job_id = 0;
	long long	first_id = 0;
	long long	last_id = 0;
	double		submit_ms;
	int			got = 0;
	int			lost = 0;
	double		sum = 0;
	int			opt;

	while ((opt = getopt(argc, argv, "n:w:h:t:p:o:")) != -1)
	{
		switch (opt)
		{
			case 'n':
				n = atoi(optarg);
				break;
			case 'w':
				warmup = atoi(optarg);
				break;
			case 'h':
				handler = optarg;
				break;
			case 't':
				timeout_ms = atof(optarg) * 1000;
				break;
			case 'p':
				pause_ms = atof(optarg);
				break;
			case 'o':
				samples_path = optarg;
				break;
			default:
				fprintf(stderr, USAGE, argv[0]);
				return 2;
		}
	}
	if (optind != argc - 1 || n < 1 || warmup < 0 || pause_ms < 0)
	{
		fprintf(stderr, USAGE, argv[0]);
		return 2;
	}
	if (samples_path != NULL && (samples = fopen(samples_path, "w")) == NULL)
	{
		perror(samples_path);
		return 2;
	}
	conninfo = argv[optind];

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		die(conn, "could not connect");
	res = PQexec(conn, "LISTEN job_engine");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die(conn, "LISTEN failed");
	PQclear(res);

	for (int i = 0; i < warmup; i++)
	{
		char		xid[32];

		(void) round_trip(conn, handler, timeout_ms, &job_id, &submit_ms, xid, sizeof(xid));
		sleep_ms(pause_ms);
	}

	rtt = malloc(sizeof(double) * n);
	sub = malloc(sizeof(double) * n);
	if (rtt == NULL || sub == NULL)
		die(NULL, "out of memory");
	for (int i = 0; i < n; i++)
	{
		char		xid[32];
		double		ms = round_trip(conn, handler, timeout_ms, &job_id, &submit_ms,
									xid, sizeof(xid));

		if (i == 0)
			first_id = job_id;
		last_id = job_id;
		sub[i] = submit_ms;
		if (samples != NULL)
			fprintf(samples, "%lld %.3f %.3f %s\n", job_id, ms, submit_ms, xid);
		if (ms < 0)
			lost++;
		else
		{
			rtt[got++] = ms;
			sum += ms;
		}
		sleep_ms(pause_ms);
	}
	PQfinish(conn);
	if (samples != NULL)
		fclose(samples);

	printf("n %d\n", got);
	printf("lost %d\n", lost);
	if (got > 0)
	{
		qsort(rtt, got, sizeof(double), cmp_double);
		printf("min_ms %.3f\n", rtt[0]);
		printf("p50_ms %.3f\n", percentile(rtt, got, 0.50));
		printf("p90_ms %.3f\n", percentile(rtt, got, 0.90));
		printf("p99_ms %.3f\n", percentile(rtt, got, 0.99));
		printf("max_ms %.3f\n", rtt[got - 1]);
		printf("mean_ms %.3f\n", sum / got);
	}
	qsort(sub, n, sizeof(double), cmp_double);
	printf("submit_p50_ms %.3f\n", percentile(sub, n, 0.50));
	printf("submit_p99_ms %.3f\n", percentile(sub, n, 0.99));
	printf("first_job_id %lld\n", first_id);
	printf("last_job_id %lld\n", last_id);
	free(rtt);
	free(sub);
	return lost == 0 ? 0 : 1;
}
