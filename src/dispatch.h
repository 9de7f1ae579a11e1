/*
 * dispatch.h
 *	  Claim low-water marks per queue, in shared memory (dispatch.c).
 */
#ifndef JOB_ENGINE_DISPATCH_H
#define JOB_ENGINE_DISPATCH_H

#include "access/xact.h"
#include "utils/timestamp.h"

/* A position in jobs_claim_idx within one queue: (priority, run_at, id). */
typedef struct JeDispatchKey
{
	int32		priority;
	TimestampTz run_at;
	int64		id;
} JeDispatchKey;

/*
 * The marks a claim descends from, read in one go: `seq` is the ring's
 * sequence number when they were read, to be handed back with what the
 * claim found (je_dispatch_advance).  Names and keys are palloc'd.
 */
typedef struct JeDispatchMarks
{
	uint64		seq;
	int			n;
	char	  **names;
	JeDispatchKey *keys;
} JeDispatchMarks;

extern Size je_dispatch_shmem_size(int ndatabases);
extern void je_dispatch_shmem_init(void *base, int ndatabases, bool init);
extern void je_dispatch_request_locks(int ndatabases);
extern void je_dispatch_attach(int dbindex);
extern void je_dispatch_xact_event(XactEvent event);
extern void je_dispatch_subxact_event(SubXactEvent event);
extern void je_dispatch_note_candidate(const char *name, int len, const JeDispatchKey *key);
extern bool je_dispatch_read(JeDispatchMarks *marks);
extern void je_dispatch_advance(uint64 seq, int n, char **names, JeDispatchKey *first,
								bool *empty);
extern void je_dispatch_reset_at_commit(void);
extern bool je_dispatch_rows_noted(void);
extern void je_dispatch_rebuild(void);

#endif
