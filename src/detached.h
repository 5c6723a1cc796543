/*
 * detached.h
 *		Detached runs: safe_backfill_start queues a run that a background
 *		worker runs as the calling role; safe_backfill_wait and
 *		safe_backfill_cancel; with shared_preload_libraries, a launcher
 *		that resumes them after a restart.
 */
#ifndef SAFE_BACKFILL_DETACHED_H
#define SAFE_BACKFILL_DETACHED_H

#include "safe_backfill.h"
#include "src/request.h"

extern int64 detached_start(BackfillRequest *req);
extern void detached_wait(Oid procoid, int64 id, int timeout_ms);
extern bool detached_cancel(Oid procoid, int64 id);
extern void detached_register_launcher(void);

#endif							/* SAFE_BACKFILL_DETACHED_H */
