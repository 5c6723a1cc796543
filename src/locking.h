/*
 * locking.h
 *		Subtransactions, lock timeouts and bounded ACCESS EXCLUSIVE steps.
 */
#ifndef SAFE_BACKFILL_LOCKING_H
#define SAFE_BACKFILL_LOCKING_H

#include "safe_backfill.h"

extern bool run_in_subtransaction(LockedAction action, void *arg, int timeout_ms,
								  const int *expected, int nexpected,
								  FailedAction on_error);
extern bool try_in_subtransaction(LockedAction action, void *arg, ErrorData **error);
extern void set_local_lock_timeout(int ms);
extern bool run_with_lock_timeout(int timeout_ms, LockedAction action, void *arg,
								  FailedAction on_error);
extern bool try_with_lock_timeout(int timeout_ms, LockedAction action, void *arg,
								  FailedAction on_error, ErrorData **caught);
extern char *describe_lock_holders(Oid relid);
extern void run_exclusive_step(BackfillTarget *target, const char *procname,
							   const char *what, DdlBuilder build, const char *conname,
							   const LockPolicy *policy, double *held_ms);
extern bool run_guarded_exclusive_step(BackfillTarget *target, const char *procname,
									   const char *what, DdlBuilder build, const char *conname,
									   const LockPolicy *policy, double *held_ms,
									   StepGuard guard, void *guard_arg);

#endif							/* SAFE_BACKFILL_LOCKING_H */
