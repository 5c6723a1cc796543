/*
 * target.h
 *		Resolve and validate the table and column of a run; recheck them after each commit.
 */
#ifndef SAFE_BACKFILL_TARGET_H
#define SAFE_BACKFILL_TARGET_H

#include "safe_backfill.h"

extern const char *change_verb(BackfillTarget *target);
extern BackfillTarget *resolve_target(Oid relid, const char *colname);
extern void recheck_target(BackfillTarget *target);
extern void recheck_target_with_lock(BackfillTarget *target, LOCKMODE lockmode);
extern void follow_target_rename(BackfillTarget *target);
extern void check_backfill_privileges(BackfillTarget *target);
extern Oid	relation_owner(Oid relid);
extern void require_table_owner(BackfillTarget *target, const char *procname);
extern int64 run_count_query(const char *sql, bool read_only, const char *what);
extern double estimate_table_rows(Oid relid);
extern BlockNumber table_block_count(Oid relid);
extern int	storage_relation_count(Oid relid);
extern List *storage_relations(Oid relid);
extern bool primary_key_still_serves(BackfillTarget *target);
extern bool caller_may_read_tableoid(BackfillTarget *target);
extern void check_expression_privileges(BackfillTarget *target);
extern void reject_instead_rules(BackfillTarget *target);

#endif							/* SAFE_BACKFILL_TARGET_H */
