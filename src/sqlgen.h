/*
 * sqlgen.h
 *		Every SQL statement the extension runs, built with quoted names and $n parameters.
 */
#ifndef SAFE_BACKFILL_SQLGEN_H
#define SAFE_BACKFILL_SQLGEN_H

#include "safe_backfill.h"

/*
 * A statement with an expression has SQL_EXPRESSION_PLACE where the
 * expression goes: a parameter number no statement uses, which
 * prepare_statement (expression.c) replaces with the analysed tree.
 */
#define SQL_EXPRESSION_PLACE		"$0"

#define SQL_EXPRESSION_PARAM		0

/*
 * In the LATERAL subquery of an expression's UPDATE (sql_compute_rows), the
 * ctid of the row the UPDATE reads, which a subquery in FROM could not name:
 * another parameter number no statement uses, replaced by that column.
 */
#define SQL_ROW_TID_PLACE			"$65535"

#define SQL_ROW_TID_PARAM			65535

/*
 * safe_update's and safe_delete's places, again parameter numbers no
 * statement uses: the expression of the set list's i-th column at
 * SQL_SET_PARAM_BASE + i (a table has at most 1600 columns), the predicate
 * at SQL_WHERE_PARAM.  expression.c puts the analysed trees there.
 */
#define SQL_SET_PARAM_BASE			60000
#define SQL_WHERE_PARAM				65534

extern char *sql_key_bound(BackfillTarget *target, bool has_lower);
extern char *sql_update_key_range(BackfillTarget *target, bool has_lower, bool has_upper);
extern char *sql_update_ctid_range(BackfillTarget *target, bool has_upper);
extern char *sql_key_list(BackfillTarget *target);
extern char *sql_key_sample(BackfillTarget *target);
extern char *sql_key_range_ctids(BackfillTarget *target, bool has_lower);
extern char *sql_key_range_leaf_ctids(BackfillTarget *target, bool has_lower);
extern char *sql_key_range_null_tids(BackfillTarget *target, bool has_lower);
extern char *sql_ctid_range_null_tids(BackfillTarget *target);
extern char *sql_update_key_round(BackfillTarget *target, bool has_lower);
extern char *sql_update_ctid_round(BackfillTarget *target);
extern char *sql_count_nulls(BackfillTarget *target);
extern char *sql_count_rows(Oid relid);
extern char *sql_qualified_relation(Oid relid);
extern char *sql_add_not_null_check(BackfillTarget *target, const char *conname);
extern char *sql_add_not_null_not_valid(BackfillTarget *target, const char *conname);
extern char *sql_validate_constraint(BackfillTarget *target, const char *conname);
extern char *sql_set_not_null(BackfillTarget *target, const char *unused);
extern char *sql_count_matching_rows(BackfillTarget *target);
extern char *sql_change_probe(BackfillTarget *target);
extern char *sql_expression_probe(BackfillTarget *target);
extern char *sql_count_computed_nulls(BackfillTarget *target);
extern char *sql_expression_rows_from(BackfillTarget *target, bool by_ctid, bool has_lower);
extern char *sql_compute_one_row(BackfillTarget *target);
extern char *sql_drop_constraint(BackfillTarget *target, const char *conname);
extern char *sql_lock_holders(void);
extern char *sql_horizon_holder(void);
extern char *sql_replica_positions(void);
extern char *sql_hint_add_column(BackfillTarget *target, const char *colname);
extern char *sql_hint_set_default(BackfillTarget *target);
extern char *sql_hint_backfill_call(BackfillTarget *target);
extern char *sql_hint_set_not_null_call(BackfillTarget *target, bool drop_check);
extern char *sql_hint_grant_table(BackfillTarget *target, const char *role);
extern char *sql_hint_grant_role(const char *granted, const char *role);
extern char *sql_hint_update_extension(void);
extern char *sql_hint_set_role(const char *role);
extern char *sql_job_find_resumable(const char *table);
extern char *sql_job_insert(const char *table);
extern char *sql_job_claim(const char *table);
extern char *sql_job_record_batch(const char *table);
extern char *sql_job_finish(const char *table);
extern char *sql_job_forget_position(const char *table);
extern char *sql_job_count_ranges(const char *table, const char *ranges);
extern char *sql_range_take_job_counts(const char *table, const char *ranges);
extern char *sql_job_delete_expired(const char *table);
extern char *sql_job_forget_finished(const char *table);
extern char *sql_range_delete(const char *table);
extern char *sql_range_insert(const char *table);
extern char *sql_range_insert_shard(const char *table);
extern char *sql_range_exists(const char *table);
extern char *sql_range_load_unfinished(const char *table);
extern char *sql_range_update(const char *table);
extern char *sql_detached_busy(const char *jobs, const char *detached);
extern char *sql_job_insert_queued(const char *table);
extern char *sql_job_requeue(const char *table);
extern char *sql_detached_upsert(const char *detached);
extern char *sql_detached_load(const char *jobs, const char *detached);
extern char *sql_detached_claim(const char *table);
extern char *sql_detached_end(const char *jobs, const char *detached);
extern char *sql_detached_request_cancel(const char *detached);
extern char *sql_detached_cancel_idle(const char *table);
extern char *sql_detached_to_resume(const char *jobs, const char *detached);
extern char *sql_disable_rule(BackfillTarget *target, const char *rulename);
extern char *sql_citus_table_kind(void);
extern char *sql_citus_placements(void);
extern char *sql_citus_background_jobs(void);
extern char *sql_citus_extension_version(void);
extern char *sql_citus_remote_settings(int nsettings);
extern char *sql_citus_shard_call(const char *nspname, const char *typname);
extern char *sql_citus_propagate_set_local(void);
extern char *sql_set_local_lock_timeout(int ms);
extern char *sql_citus_shard_nodes(void);
extern char *sql_citus_shard_row_estimate(void);
extern char *sql_citus_show_shards(void);
extern char *sql_citus_long_snapshot_holders(void);
extern char *sql_citus_before_shard_call(void);
extern char *sql_citus_lock_holder_snapshot(void);
extern char *sql_citus_lock_holders_left(void);

#endif							/* SAFE_BACKFILL_SQLGEN_H */
