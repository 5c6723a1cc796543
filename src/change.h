/*
 * change.h
 *		safe_update's set list and the predicate of safe_update and
 *		safe_delete: parsed and analysed once, before any row changes.
 */
#ifndef SAFE_BACKFILL_CHANGE_H
#define SAFE_BACKFILL_CHANGE_H

#include "safe_backfill.h"

extern void prepare_row_change(BackfillTarget *target, ChangeKind kind, const char *set_text,
							   const char *where_text, bool dry_run);
extern void probe_row_change(BackfillTarget *target);
extern char *serialize_row_change(BackfillTarget *target);
extern void restore_row_change(BackfillTarget *target, const char *serialized);

#endif							/* SAFE_BACKFILL_CHANGE_H */
