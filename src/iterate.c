/*
 * iterate.c
 *		Walk a table in batches: by primary-key ranges, or by ranges of heap
 *		blocks for tables without a primary key.
 *
 * Each call of iterator_run_batch() runs exactly one UPDATE over one range
 * and leaves the commit to the caller.  Ranges are bounded by an index range
 * or a block range, never by "WHERE col IS NULL LIMIT n", so every row is
 * read once per pass and the total work is linear in the table size.  The
 * last range of a pass is open-ended, so rows appended while the pass ran
 * are covered too.
 *
 * The state that must survive commits (bounds, kept plans) lives in the
 * iterator's own memory context under the SPI procedure context.
 */
#include "safe_backfill.h"
#include "src/expression.h"
#include "src/iterate.h"
#include "src/keys.h"
#include "src/locking.h"
#include "src/settings.h"
#include "src/sqlgen.h"
#include "src/target.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/resowner.h"

struct BatchIterator
{
	BackfillTarget *target;
	MemoryContext cxt;
	int			batch_size;
	bool		by_ctid;
	bool		finished;
	bool		finished_at_end;	/* the batch just run reached end_key */

	/* a range of the table given to one parallel worker: keys up to end_key */
	bool		has_end_key;
	Datum	   *end_key;
	bool		has_end_block;
	BlockNumber end_block;

	/* keyset: the last key of the previous batch, exclusive lower bound */
	bool		has_lower;
	Datum	   *lower;
	Datum	   *upper;
	SPIPlanPtr	bound_plan[2];	/* [has_lower] */
	SPIPlanPtr	ctid_range_plan[2];	/* [has_lower] */
	BlockNumber expected_blocks;	/* blocks a batch of rows normally spans */
	SPIPlanPtr	key_update_plan[2][2];	/* [has_lower][has_upper] */
	double		estimated_rows;
	int64		rows_scanned;

	/* ctid ranges: [next_block, next_block + stride) */
	BlockNumber next_block;
	BlockNumber range_start;
	BlockNumber blocks_per_batch;	/* blocks holding about batch_size rows */
	BlockNumber stride;			/* blocks in the next range */
	bool		sweeping;		/* mostly reading: widen ranges that write little */
	BlockNumber table_blocks;
	SPIPlanPtr	ctid_update_plan[2];	/* [has_upper] */

	/* blocks whose rows the last batch rewrote: [freed_start, freed_end) */
	BlockNumber freed_start;
	BlockNumber freed_end;

	/*
	 * ... or, in a partitioned table walked by key, a range in each leaf
	 * (note_leaf_key_range_blocks); freed[] is what iterator_freed_ranges
	 * hands out, either way.
	 */
	FreedBlocks *freed;
	int			nfreed;
	int			freed_cap;
	int			nleaf_freed;
	SPIPlanPtr	leaf_ctids_plan[2];	/* [has_lower] */
	bool		rounds_read_all_leaves; /* see rounds_limited_to_batch_leaves */
	bool		leaves_unknown; /* partitioned, and the caller may not read tableoid */

	/*
	 * HOT rounds (see plan_hot_rounds): a batch whose rows were picked by
	 * tid runs as several UPDATEs, one per round, each committed by the
	 * caller.  The bounds and the rounds' tids stay put until the last round
	 * is done; only then does the position move on.
	 */
	int			hot_rounds;		/* rounds a batch may be split into; 1: none */
	bool		in_batch;		/* a split batch has rounds left */
	bool		batch_has_upper;
	BlockNumber batch_end;		/* ctid ranges: the first block past the batch */
	int			nrounds;		/* non-empty rounds of the batch in progress */
	int			round;			/* the next one */
	Datum	   *round_tids;		/* tid[] of each round */
	MemoryContext rounds_cxt;	/* the rounds' tids, reset for each batch */
	SPIPlanPtr	null_tids_plan[2];	/* keyset [has_lower]; ctid ranges use [0] */
	SPIPlanPtr	key_round_plan[2];	/* [has_lower] */
	SPIPlanPtr	ctid_round_plan;

	int			plans_generation;	/* target->run.generation the plans were built for */
	MemoryContextCallback free_plans;	/* when cxt goes, by any path */
};

/*
 * Plans are prepared once and kept across our commits (SPI_keepplan).  They
 * are custom plans: LIMIT/OFFSET and range bounds are only known per batch,
 * and a generic plan guessing at them could pick a sequential scan.
 */
static SPIPlanPtr
prepare_kept_plan_with(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);
	if (plan == NULL)
		elog(ERROR, "safe_backfill: could not prepare \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "safe_backfill: could not keep plan for \"%s\"", sql);
	return plan;
}

static SPIPlanPtr
prepare_kept_plan(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept_plan_with(sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * The same for an UPDATE that fills the column: with an expression, it
 * computes the analysed tree (prepare_statement).  Run it with
 * execute_statement.
 */
static SPIPlanPtr
prepare_kept_update_plan(BackfillTarget *target, const char *sql, int nargs,
						 Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = prepare_statement(target, sql, nargs, argtypes, cursor_options);

	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "safe_backfill: could not keep plan for \"%s\"", sql);
	return plan;
}

/*
 * Kept plans live in CacheMemoryContext until freed: free them whenever the
 * iterator's context goes, by iterator_free() or, after an error, with the
 * procedure's context, or every failed call would leave its plans behind
 * for the rest of the session.
 */
static void
free_kept_plans(void *arg)
{
	BatchIterator *it = (BatchIterator *) arg;
	SPIPlanPtr *plans[] = {&it->bound_plan[0], &it->bound_plan[1],
		&it->ctid_range_plan[0], &it->ctid_range_plan[1],
		&it->ctid_update_plan[0], &it->ctid_update_plan[1],
		&it->key_update_plan[0][0], &it->key_update_plan[0][1],
	&it->key_update_plan[1][0], &it->key_update_plan[1][1],
		&it->null_tids_plan[0], &it->null_tids_plan[1],
	&it->key_round_plan[0], &it->key_round_plan[1], &it->ctid_round_plan,
	&it->leaf_ctids_plan[0], &it->leaf_ctids_plan[1]};
	int			i;

	for (i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i])
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

static BatchIterator *
iterator_alloc(BackfillTarget *target, int batch_size)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "safe_backfill iterator",
											  ALLOCSET_SMALL_SIZES);
	BatchIterator *it = MemoryContextAllocZero(cxt, sizeof(BatchIterator));

	it->target = target;
	it->cxt = cxt;
	it->batch_size = batch_size;
	it->plans_generation = target->run.generation;
	it->hot_rounds = 1;
	it->rounds_cxt = AllocSetContextCreate(cxt, "safe_backfill rounds",
										   ALLOCSET_DEFAULT_SIZES);
	it->free_plans.func = free_kept_plans;
	it->free_plans.arg = it;
	MemoryContextRegisterResetCallback(cxt, &it->free_plans);
	return it;
}

/*
 * A kept plan names the table by the text it was prepared from and would
 * re-resolve that text after a rename, reaching whatever table now has the
 * old name.  When the table was renamed (recheck_target followed it), drop
 * the plans; they are prepared again from the current name.
 */
static void
drop_plans_of_old_name(BatchIterator *it)
{
	if (it->plans_generation == it->target->run.generation)
		return;
	free_kept_plans(it);
	it->plans_generation = it->target->run.generation;
}

/* The plans go with the context (free_kept_plans). */
void
iterator_free(BatchIterator *it)
{
	MemoryContextDelete(it->cxt);
}

static void plan_hot_rounds(BatchIterator *it, bool has_upper);
static int64 update_round(BatchIterator *it);
static bool round_done_more_left(BatchIterator *it);

/* ---------------------------------------------------------------------
 * Primary-key keyset
 * --------------------------------------------------------------------- */

/* Rows a heap block holds on average; 1 when there is nothing to go by. */
static double
rows_per_block(double rows, BlockNumber blocks)
{
	return (blocks > 0 && rows > 0) ? rows / blocks : 1.0;
}

/*
 * The blocks a batch of rows spans.  The rows are spread over the leaves of
 * a partitioned table: count the blocks of all of them (about: the largest
 * leaf's times their number), or a batch's rows would seem to be packed
 * into a block or two, and any leaf's share of them too far apart to prune.
 */
static BlockNumber
expected_blocks_per_batch(BackfillTarget *target, int batch_size, double rows)
{
	double		all_leaves = (double) table_block_count(target->relid) *
		Max(1, storage_relation_count(target->relid));
	BlockNumber blocks = (BlockNumber) Min(all_leaves, (double) MaxBlockNumber);

	return (BlockNumber) Max(1.0, batch_size / rows_per_block(rows, blocks));
}

/*
 * Whether a partitioned table's rounds read the leaves their batch has rows
 * in only: when the key starts with the first column of a range or list
 * partitioning (a month's payments by (payment_date, payment_id)), the
 * bound sqlgen.c puts on it leaves the other leaves out of the rounds'
 * generic plan.  Otherwise each round would look for its tids in every
 * leaf, and a batch is better one UPDATE, its leaves pruned after it.
 */
static bool
rounds_limited_to_batch_leaves(BackfillTarget *target)
{
	Relation	rel;
	PartitionKey key;
	bool		limited;

	if (target->relkind != RELKIND_PARTITIONED_TABLE)
		return true;
	rel = try_relation_open(target->relid, AccessShareLock);
	if (rel == NULL)
		return false;			/* dropped: recheck_target will say so */
	key = RelationGetPartitionKey(rel);
	limited = key != NULL && key->strategy != PARTITION_STRATEGY_HASH &&
		key->partattrs[0] == target->keys[0].attnum;
	relation_close(rel, AccessShareLock);
	return limited;
}

BatchIterator *
iterator_create_keyset(BackfillTarget *target, int batch_size, double rows)
{
	BatchIterator *it = iterator_alloc(target, batch_size);

	it->lower = MemoryContextAllocZero(it->cxt, sizeof(Datum) * target->nkeys);
	it->upper = MemoryContextAllocZero(it->cxt, sizeof(Datum) * target->nkeys);
	it->estimated_rows = rows;
	it->expected_blocks = expected_blocks_per_batch(target, batch_size, rows);
	it->leaves_unknown = target->relkind == RELKIND_PARTITIONED_TABLE &&
		!caller_may_read_tableoid(target);
	it->rounds_read_all_leaves = it->leaves_unknown || !rounds_limited_to_batch_leaves(target);
	return it;
}

/* Parameter types of the bound query: the lower bound key, then the offset. */
static Oid *
bound_param_types(BackfillTarget *target)
{
	Oid		   *types = palloc(sizeof(Oid) * (target->nkeys + 1));
	int			i;

	for (i = 0; i < target->nkeys; i++)
		types[i] = target->keys[i].typid;
	types[target->nkeys] = INT8OID;
	return types;
}

static SPIPlanPtr
bound_plan(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	int			lower = it->has_lower ? 1 : 0;

	if (it->bound_plan[lower] == NULL)
	{
		Oid		   *types = bound_param_types(t);

		/* without a lower bound only the offset, the last type, is used */
		it->bound_plan[lower] = prepare_kept_plan(sql_key_bound(t, lower),
												  lower ? t->nkeys + 1 : 1,
												  lower ? types : &types[t->nkeys]);
	}
	return it->bound_plan[lower];
}

static SPIPlanPtr
key_update_plan(BatchIterator *it, bool has_upper)
{
	BackfillTarget *t = it->target;
	int			lower = it->has_lower ? 1 : 0;
	int			upper = has_upper ? 1 : 0;

	if (it->key_update_plan[lower][upper] == NULL)
	{
		Oid		   *types = palloc(sizeof(Oid) * (t->nkeys * 2 + 1));
		int			n = 0;
		int			i;

		types[n++] = t->atttypid;
		for (i = 0; i < t->nkeys * (lower + upper); i++)
			types[n++] = t->keys[i % t->nkeys].typid;
		it->key_update_plan[lower][upper] =
			prepare_kept_update_plan(t, sql_update_key_range(t, lower, upper), n, types,
									 CURSOR_OPT_CUSTOM_PLAN);
	}
	return it->key_update_plan[lower][upper];
}

/* The key of tuple into dst, in the iterator's memory. */
static void
copy_key(BatchIterator *it, Datum *dst, HeapTuple tuple, TupleDesc desc)
{
	MemoryContext old = MemoryContextSwitchTo(it->cxt);

	(void) key_from_tuple(it->target, tuple, desc, dst);
	MemoryContextSwitchTo(old);
}

/* Find the key that closes this batch; false if fewer than batch_size remain. */
static bool
find_upper_bound(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	Datum	   *args = palloc(sizeof(Datum) * (t->nkeys + 1));
	int			n = 0;
	int			i;
	int			rc;
	bool		found;

	if (it->has_lower)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->lower[i];
	args[n++] = Int64GetDatum((int64) it->batch_size - 1);

	rc = SPI_execute_plan(bound_plan(it), args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: key bound query failed: %s",
			 SPI_result_code_string(rc));
	found = (SPI_processed == 1);
	if (found)
		copy_key(it, it->upper, SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	SPI_freetuptable(SPI_tuptable);
	pfree(args);
	return found;
}

/*
 * The statement of a batch did what it is for: an UPDATE, a DELETE, or a
 * dry run's SELECT of the rows it would change.
 */
static void
require_batch_done(BackfillTarget *t, int rc)
{
	int			expected = t->change.dry_run ? SPI_OK_SELECT :
		t->change.kind == CHANGE_DELETE ? SPI_OK_DELETE : SPI_OK_UPDATE;

	if (rc != expected)
		elog(ERROR, "%s: batch statement failed: %s", t->change.procname,
			 SPI_result_code_string(rc));
}

/*
 * With an expression, or in safe_update's and safe_delete's statements, $1
 * (the value) is not used: it is passed as NULL.
 */
static char *
update_nulls(BackfillTarget *t, int nargs)
{
	char	   *nulls;

	if (t->written.expression == NULL && t->change.kind == CHANGE_FILL)
		return NULL;
	nulls = palloc(nargs + 1);
	memset(nulls, ' ', nargs);
	nulls[0] = 'n';
	nulls[nargs] = '\0';
	return nulls;
}

static int64
update_key_range(BatchIterator *it, bool has_upper)
{
	BackfillTarget *t = it->target;
	Datum	   *args = palloc(sizeof(Datum) * (t->nkeys * 2 + 1));
	int			n = 0;
	int			i;
	int			rc;

	args[n++] = t->written.value;
	if (it->has_lower)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->lower[i];
	if (has_upper)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->upper[i];

	rc = execute_statement(key_update_plan(it, has_upper), args, update_nulls(t, n), false, 0);
	require_batch_done(t, rc);
	pfree(args);
	return (int64) SPI_processed;
}

static void
advance_lower_bound(BatchIterator *it)
{
	Datum	   *swap = it->lower;

	it->lower = it->upper;
	it->upper = swap;
	it->has_lower = true;
}

/*
 * Only a range of blocks about as long as a batch of rows is worth pruning:
 * when the key order does not follow the physical order (random uuids, say)
 * the rows of a batch are spread over the whole table.
 */
static bool
blocks_close_together(BatchIterator *it, BlockNumber b1, BlockNumber b2)
{
	return Max(b1, b2) - Min(b1, b2) <= it->expected_blocks * 4 + 16;
}

static void note_leaf_key_range_blocks(BatchIterator *it);
static bool leaf_ranges_from_round_tids(BatchIterator *it, bool has_upper);

/* Where the batch's rows are: from its first and its last row's tid. */
static void
note_key_range_blocks(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	Datum	   *args = palloc(sizeof(Datum) * t->nkeys * 2);
	int			lower = it->has_lower ? 1 : 0;
	int			n = 0;
	int			i;
	bool		null1,
				null2;
	ItemPointer first,
				last;
	BlockNumber b1,
				b2;

	it->freed_start = it->freed_end = 0;
	it->nleaf_freed = 0;
	if (!safe_backfill_reuse_space)
		return;
	if (t->relkind == RELKIND_PARTITIONED_TABLE)
	{
		if (it->leaves_unknown)
			return;
		/* split into rounds, the batch's tids give its leaves' ranges */
		if (!leaf_ranges_from_round_tids(it, true))
			note_leaf_key_range_blocks(it);
		return;
	}
	if (t->relkind != RELKIND_RELATION)
		return;
	if (it->ctid_range_plan[lower] == NULL)
	{
		Oid		   *types = palloc(sizeof(Oid) * t->nkeys * 2);

		for (i = 0; i < t->nkeys * (lower + 1); i++)
			types[i] = t->keys[i % t->nkeys].typid;
		it->ctid_range_plan[lower] =
			prepare_kept_plan(sql_key_range_ctids(t, lower), t->nkeys * (lower + 1), types);
	}
	if (lower)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->lower[i];
	for (i = 0; i < t->nkeys; i++)
		args[n++] = it->upper[i];

	if (SPI_execute_plan(it->ctid_range_plan[lower], args, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "safe_backfill: batch block range query failed");
	first = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &null1));
	last = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2, &null2));
	if (!null1 && !null2)
	{
		b1 = ItemPointerGetBlockNumber(first);
		b2 = ItemPointerGetBlockNumber(last);
		if (blocks_close_together(it, b1, b2))
		{
			it->freed_start = Min(b1, b2);
			it->freed_end = Max(b1, b2) + 1;
		}
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(args);
}

/* Room in it->freed for n ranges, in the iterator's memory. */
static void
reserve_freed(BatchIterator *it, int n)
{
	if (n <= it->freed_cap)
		return;
	it->freed_cap = Max(n, it->freed_cap * 2);
	if (it->freed == NULL)
		it->freed = MemoryContextAlloc(it->cxt, sizeof(FreedBlocks) * it->freed_cap);
	else
		it->freed = repalloc(it->freed, sizeof(FreedBlocks) * it->freed_cap);
}

/* Add leaf's blocks [b1, b2] to the batch's ranges, if close enough together. */
static void
note_leaf_range(BatchIterator *it, Oid leaf, BlockNumber b1, BlockNumber b2)
{
	if (!blocks_close_together(it, b1, b2))
		return;
	reserve_freed(it, it->nleaf_freed + 1);
	it->freed[it->nleaf_freed].relid = leaf;
	it->freed[it->nleaf_freed].start = Min(b1, b2);
	it->freed[it->nleaf_freed].end = Max(b1, b2) + 1;
	it->nleaf_freed++;
}

/*
 * A partitioned table's batch: its rows are in one leaf, or a few (a key
 * that starts with the partition key, a month's payments), each with blocks
 * of its own.  Note the range of each leaf the key range has rows in, from
 * the first and the last of their tids there, so that each gets pruned (and
 * the batch its HOT rounds) as a plain table's does.
 */
static void
note_leaf_key_range_blocks(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	Datum	   *args = palloc(sizeof(Datum) * t->nkeys * 2);
	int			lower = it->has_lower ? 1 : 0;
	int			n = 0;
	int			i;
	uint64		row;

	if (it->leaf_ctids_plan[lower] == NULL)
	{
		Oid		   *types = palloc(sizeof(Oid) * t->nkeys * 2);

		for (i = 0; i < t->nkeys * (lower + 1); i++)
			types[i] = t->keys[i % t->nkeys].typid;
		it->leaf_ctids_plan[lower] =
			prepare_kept_plan(sql_key_range_leaf_ctids(t, lower), t->nkeys * (lower + 1), types);
	}
	if (lower)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->lower[i];
	for (i = 0; i < t->nkeys; i++)
		args[n++] = it->upper[i];

	if (SPI_execute_plan(it->leaf_ctids_plan[lower], args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: batch block range query failed");
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		null0,
					null1,
					null2;
		Oid			leaf = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &null0));
		ItemPointer first = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 2, &null1));
		ItemPointer last = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 3, &null2));

		if (null0 || null1 || null2)
			continue;
		note_leaf_range(it, leaf, ItemPointerGetBlockNumber(first),
						ItemPointerGetBlockNumber(last));
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(args);
}

/* Whether the blocks of the batch about to run are known (to prune between rounds). */
static bool
batch_blocks_known(BatchIterator *it)
{
	return it->freed_end > it->freed_start || it->nleaf_freed > 0;
}

/* btree order of two keys, column by column, as the primary key sorts them */
static int
compare_keys(BatchIterator *it, Datum *a, Datum *b)
{
	BackfillTarget *t = it->target;
	int			i;

	for (i = 0; i < t->nkeys; i++)
	{
		int32		c = DatumGetInt32(OidFunctionCall2Coll(t->keys[i].cmpproc,
														   t->keys[i].collation,
														   a[i], b[i]));

		if (c != 0)
			return c;
	}
	return 0;
}

/* A worker's range ends at end_key: the batch that reaches it stops there. */
static bool
clip_to_end_key(BatchIterator *it, bool has_upper)
{
	BackfillTarget *t = it->target;
	int			i;
	MemoryContext old;

	if (!it->has_end_key)
		return has_upper;

	if (has_upper && compare_keys(it, it->upper, it->end_key) < 0)
		return true;
	old = MemoryContextSwitchTo(it->cxt);
	for (i = 0; i < t->nkeys; i++)
		it->upper[i] = datumCopy(it->end_key[i], t->keys[i].typbyval, t->keys[i].typlen);
	MemoryContextSwitchTo(old);
	it->finished_at_end = true;
	return true;
}

static bool
keyset_run_batch(BatchIterator *it, int64 *filled, int64 *scanned)
{
	bool		has_upper;

	if (!it->in_batch)
	{
		if (it->has_end_key && it->has_lower && compare_keys(it, it->lower, it->end_key) >= 0)
		{
			it->finished = true;
			return false;
		}
		has_upper = clip_to_end_key(it, find_upper_bound(it));

		it->freed_start = it->freed_end = 0;
		it->nleaf_freed = 0;
		if (has_upper)
			note_key_range_blocks(it);
		it->batch_has_upper = has_upper;
		plan_hot_rounds(it, has_upper);
	}
	has_upper = it->batch_has_upper;
	if (it->nrounds > 1)
	{
		*filled = update_round(it);
		if (round_done_more_left(it))
			return true;
	}
	else
		*filled = update_key_range(it, has_upper);
	*scanned = has_upper ? it->batch_size : *filled;
	if (has_upper)
		advance_lower_bound(it);
	if (!has_upper || it->finished_at_end)
		it->finished = true;
	it->rows_scanned += *scanned;
	return true;
}

/* ---------------------------------------------------------------------
 * Ranges of heap blocks
 * --------------------------------------------------------------------- */

BatchIterator *
iterator_create_ctid(BackfillTarget *target, int batch_size, double rows)
{
	BatchIterator *it = iterator_alloc(target, batch_size);
	BlockNumber blocks = table_block_count(target->relid);
	int			leaves = Max(1, storage_relation_count(target->relid));
	double		per_batch = batch_size / rows_per_block(rows, blocks) / leaves;

	it->by_ctid = true;
	it->estimated_rows = rows;
	it->table_blocks = blocks;
	it->blocks_per_batch = (BlockNumber) Max(1.0, Min(per_batch, (double) MaxBlockNumber / 2));
	it->stride = it->blocks_per_batch;
	return it;
}

/*
 * A sweep after the main pass expects to write next to nothing, so its
 * ranges start SWEEP_WIDENING times wider; a range that writes more than
 * half a batch brings them back to batch size, so a transaction still never
 * writes much more than batch_size rows.
 */
#define SWEEP_WIDENING 8

BatchIterator *
iterator_create_sweep(BackfillTarget *target, int batch_size, double rows)
{
	BatchIterator *it = iterator_create_ctid(target, batch_size, rows);

	it->sweeping = true;
	it->stride = it->blocks_per_batch * SWEEP_WIDENING;
	return it;
}

static void
adapt_sweep_stride(BatchIterator *it, int64 filled)
{
	if (!it->sweeping)
		return;
	if (filled * 2 > it->batch_size)
		it->stride = it->blocks_per_batch;
	else
		it->stride = Min(it->stride * 2, it->blocks_per_batch * SWEEP_WIDENING);
}

static SPIPlanPtr
ctid_update_plan(BatchIterator *it, bool has_upper)
{
	int			upper = has_upper ? 1 : 0;

	if (it->ctid_update_plan[upper] == NULL)
	{
		Oid			types[3] = {it->target->atttypid, TIDOID, TIDOID};

		it->ctid_update_plan[upper] =
			prepare_kept_update_plan(it->target, sql_update_ctid_range(it->target, has_upper),
									 has_upper ? 3 : 2, types, CURSOR_OPT_CUSTOM_PLAN);
	}
	return it->ctid_update_plan[upper];
}

static Datum
block_start_tid(ItemPointer tid, BlockNumber block)
{
	ItemPointerSet(tid, block, 0);
	return PointerGetDatum(tid);
}

/*
 * The end of the table is read again before every batch: rows inserted, and
 * row versions moved by concurrent updates, land past the size seen at the
 * start.  Once the range reaches the current end, a last open-ended range
 * takes whatever was appended in between.
 */
static bool
ctid_run_batch(BatchIterator *it, int64 *filled, int64 *scanned)
{
	Datum		args[3];
	ItemPointerData first;
	ItemPointerData past;
	bool		has_upper;
	int			rc;

	BlockNumber end;
	BlockNumber limit;

	if (!it->in_batch)
	{
		it->table_blocks = table_block_count(it->target->relid);
		if (it->has_end_block && it->next_block >= it->end_block)
		{
			it->finished = true;
			return false;
		}
		limit = it->has_end_block ? Min(it->end_block, it->table_blocks) : it->table_blocks;
		has_upper = it->next_block < limit || it->has_end_block;
		it->range_start = it->next_block;
		end = Min(limit, it->next_block + it->stride);
		if (it->has_end_block && end <= it->next_block)
			end = it->end_block;	/* the table is shorter than the range */
		it->batch_has_upper = has_upper;
		it->batch_end = end;
		it->freed_start = it->range_start;
		it->freed_end = has_upper ? end : it->range_start;
		plan_hot_rounds(it, has_upper);
	}
	has_upper = it->batch_has_upper;
	end = it->batch_end;

	if (it->nrounds > 1)
	{
		*filled = update_round(it);
		if (round_done_more_left(it))
			return true;
	}
	else
	{
		args[0] = it->target->written.value;
		args[1] = block_start_tid(&first, it->next_block);
		if (has_upper)
			args[2] = block_start_tid(&past, end);

		rc = execute_statement(ctid_update_plan(it, has_upper), args,
							  update_nulls(it->target, has_upper ? 3 : 2), false, 0);
		require_batch_done(it->target, rc);
		*filled = (int64) SPI_processed;
	}

	/* only now: a batch that failed is retried from the same block */
	if (has_upper)
		it->next_block = end;
	adapt_sweep_stride(it, *filled);
	it->freed_start = it->range_start;
	it->freed_end = has_upper ? it->next_block : it->range_start;
	*scanned = has_upper ?
		(int64) ((it->next_block - it->range_start) * rows_per_block(it->estimated_rows, it->table_blocks)) :
		*filled;
	it->rows_scanned += *scanned;
	if (!has_upper || (it->has_end_block && it->next_block >= it->end_block))
		it->finished = true;
	return true;
}

/* ---------------------------------------------------------------------
 * HOT rounds
 *
 * An UPDATE is HOT - it adds no index entry at all - only when no indexed
 * column changes and the new version fits on the old one's page.  On full
 * pages the first rewrite of a page must move away; but once a fraction of
 * a page's rows has moved out and committed, pruning frees their space and
 * the page's next rows are rewritten in place.  So a batch whose rows are
 * physically together runs in k rounds: round r rewrites the rows whose
 * line pointer number is r modulo k, so that every round takes about 1/k
 * of each page's rows; the caller commits after each round and prunes the
 * batch's pages before the next one.  Only the first round's rows move
 * (into the space earlier batches freed); the others are mostly HOT.
 *
 * The rows are picked directly: before the first round, the tids of the
 * batch's rows still NULL are read once and split by line pointer number;
 * each round's UPDATE reads its tids only (a TID Scan).  It keeps the
 * batch's own bounds and "col IS NULL": a row whose tid went elsewhere since
 * (a partition's row with the same tid, a line pointer vacuumed and reused)
 * is written only if it belongs to the batch and still needs it.  A row a
 * concurrent UPDATE moved after its tid was read is missed, like a row
 * moved behind a block range: the sweep after the main pass fills it.
 * --------------------------------------------------------------------- */

/* How many rounds the next batches may be split into (1: none); see backfill.c. */
void
iterator_set_hot_rounds(BatchIterator *it, int rounds)
{
	it->hot_rounds = Max(1, rounds);
}

/* Whether the batch in progress has rounds left: its position has not moved yet. */
bool
iterator_round_pending(BatchIterator *it)
{
	return it->in_batch;
}

/*
 * The types of a batch's bounds, appended to types[*n]: two tids for block
 * ranges, else the key (twice with a lower bound).
 */
static void
append_bound_types(BatchIterator *it, Oid *types, int *n, bool has_lower)
{
	BackfillTarget *t = it->target;
	int			i;

	if (it->by_ctid)
	{
		types[(*n)++] = TIDOID;
		types[(*n)++] = TIDOID;
	}
	else
		for (i = 0; i < t->nkeys * (has_lower ? 2 : 1); i++)
			types[(*n)++] = t->keys[i % t->nkeys].typid;
}

static SPIPlanPtr
null_tids_plan(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	int			lower = (!it->by_ctid && it->has_lower) ? 1 : 0;

	if (it->null_tids_plan[lower] == NULL)
	{
		Oid		   *types = palloc(sizeof(Oid) * Max(2, t->nkeys * 2));
		int			n = 0;

		append_bound_types(it, types, &n, lower);
		/* safe_update's and safe_delete's predicate is a place for its tree */
		it->null_tids_plan[lower] =
			prepare_kept_update_plan(t, it->by_ctid ? sql_ctid_range_null_tids(t) :
									 sql_key_range_null_tids(t, lower), n, types,
									 CURSOR_OPT_CUSTOM_PLAN);
	}
	return it->null_tids_plan[lower];
}

/* The batch's bounds as statement arguments, from args[0]: keys, or two tids. */
static int
batch_bound_args(BatchIterator *it, Datum *args, ItemPointer tids)
{
	BackfillTarget *t = it->target;
	int			n = 0;
	int			i;

	if (it->by_ctid)
	{
		args[n++] = block_start_tid(&tids[0], it->range_start);
		args[n++] = block_start_tid(&tids[1], it->batch_end);
		return n;
	}
	if (it->has_lower)
		for (i = 0; i < t->nkeys; i++)
			args[n++] = it->lower[i];
	for (i = 0; i < t->nkeys; i++)
		args[n++] = it->upper[i];
	return n;
}

/*
 * Split the tids just read into rounds by line pointer number: round r gets
 * the rows numbered r modulo k, so each round takes a share of every page.
 * Empty rounds are left out.
 */
static void
split_tids_into_rounds(BatchIterator *it, SPITupleTable *tuptable, uint64 ntids)
{
	int			k = it->hot_rounds;
	int		   *counts;
	Datum	  **members;
	uint64		i;
	int			r;
	MemoryContext old = MemoryContextSwitchTo(it->rounds_cxt);

	counts = palloc0(sizeof(int) * k);
	members = palloc(sizeof(Datum *) * k);
	for (i = 0; i < ntids; i++)
	{
		bool		isnull;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tuptable->vals[i],
																	  tuptable->tupdesc,
																	  1, &isnull));

		counts[ItemPointerGetOffsetNumber(tid) % k]++;
	}
	for (r = 0; r < k; r++)
	{
		members[r] = palloc(sizeof(Datum) * Max(1, counts[r]));
		counts[r] = 0;
	}
	for (i = 0; i < ntids; i++)
	{
		bool		isnull;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tuptable->vals[i],
																	  tuptable->tupdesc,
																	  1, &isnull));
		int			round = ItemPointerGetOffsetNumber(tid) % k;

		/* construct_array copies the tids out of the tuple table */
		members[round][counts[round]++] = PointerGetDatum(tid);
	}
	it->round_tids = palloc(sizeof(Datum) * k);
	it->nrounds = 0;
	for (r = 0; r < k; r++)
		if (counts[r] > 0)
			it->round_tids[it->nrounds++] =
				PointerGetDatum(construct_array(members[r], counts[r], TIDOID,
												sizeof(ItemPointerData), false,
												TYPALIGN_SHORT));
	MemoryContextSwitchTo(old);
}

/*
 * Whether the batch about to run may be split into rounds: more than one
 * round asked for, space reuse on, a closed range of the main pass, and in a
 * partitioned table walked by key, rounds that read their batch's leaves
 * only (rounds_limited_to_batch_leaves).
 */
static bool
rounds_possible(BatchIterator *it, bool has_upper)
{
	return it->hot_rounds > 1 && !it->sweeping && has_upper && safe_backfill_reuse_space &&
		(it->by_ctid || !it->rounds_read_all_leaves);
}

/*
 * A partitioned table walked by key whose batch will be split into rounds
 * notes its leaves' ranges from the tids plan_hot_rounds reads anyway (of
 * the rows still NULL, the ones rewritten), instead of reading the batch's
 * rows once more for them (note_leaf_key_range_blocks).
 */
static bool
leaf_ranges_from_round_tids(BatchIterator *it, bool has_upper)
{
	return !it->by_ctid && it->target->relkind == RELKIND_PARTITIONED_TABLE &&
		rounds_possible(it, has_upper);
}

/* From the batch's (tid, tableoid) rows: each leaf's first and last block. */
static void
note_leaf_ranges_of_tids(BatchIterator *it, SPITupleTable *tuptable, uint64 ntids)
{
	Oid		   *leaves = palloc(sizeof(Oid) * Max(1, ntids));
	BlockNumber *first = palloc(sizeof(BlockNumber) * Max(1, ntids));
	BlockNumber *last = palloc(sizeof(BlockNumber) * Max(1, ntids));
	int			nleaves = 0;
	uint64		i;
	int			j;

	it->nleaf_freed = 0;
	for (i = 0; i < ntids; i++)
	{
		bool		null1,
					null2;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tuptable->vals[i],
																	  tuptable->tupdesc,
																	  1, &null1));
		Oid			leaf = DatumGetObjectId(SPI_getbinval(tuptable->vals[i],
														  tuptable->tupdesc, 2, &null2));
		BlockNumber blk;

		if (null1 || null2)
			continue;
		blk = ItemPointerGetBlockNumber(tid);
		/* a batch's rows are in a few leaves: a short search */
		for (j = 0; j < nleaves && leaves[j] != leaf; j++)
			;
		if (j == nleaves)
		{
			leaves[nleaves] = leaf;
			first[nleaves] = last[nleaves] = blk;
			nleaves++;
		}
		first[j] = Min(first[j], blk);
		last[j] = Max(last[j], blk);
	}
	for (j = 0; j < nleaves; j++)
		note_leaf_range(it, leaves[j], first[j], last[j]);
	pfree(leaves);
	pfree(first);
	pfree(last);
}

/*
 * Split the batch about to run into rounds, or not (nrounds = 1: one plain
 * UPDATE, as without rounds).  Rounds need the batch's pages pruned between
 * them (space reuse on, the batch's blocks known and close together: see
 * note_key_range_blocks) and a closed range: the last, open-ended range of
 * a pass also takes rows appended while it runs, which no tid list holds.
 */
static void
plan_hot_rounds(BatchIterator *it, bool has_upper)
{
	Datum		args[INDEX_MAX_KEYS * 2];
	ItemPointerData tids[2];
	int			rc;

	bool		leaves_from_tids = leaf_ranges_from_round_tids(it, has_upper);

	it->nrounds = 1;
	it->round = 0;
	MemoryContextReset(it->rounds_cxt);
	it->round_tids = NULL;
	if (!rounds_possible(it, has_upper) || (!leaves_from_tids && !batch_blocks_known(it)))
		return;
	(void) batch_bound_args(it, args, tids);
	rc = execute_statement(null_tids_plan(it), args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: reading the batch's row tids failed: %s",
			 SPI_result_code_string(rc));
	if (leaves_from_tids)
		note_leaf_ranges_of_tids(it, SPI_tuptable, SPI_processed);
	if (SPI_processed > 1 && batch_blocks_known(it))
		split_tids_into_rounds(it, SPI_tuptable, SPI_processed);
	SPI_freetuptable(SPI_tuptable);
	if (it->nrounds < 1)
		it->nrounds = 1;
}

/* After a round's UPDATE: true if the batch has rounds left (its position stays). */
static bool
round_done_more_left(BatchIterator *it)
{
	it->round++;
	it->in_batch = it->round < it->nrounds;
	return it->in_batch;
}

static SPIPlanPtr
round_plan(BatchIterator *it)
{
	BackfillTarget *t = it->target;
	SPIPlanPtr *plan;
	Oid		   *types = palloc(sizeof(Oid) * (t->nkeys * 2 + 4));
	int			lower = it->has_lower ? 1 : 0;
	int			n = 0;

	plan = it->by_ctid ? &it->ctid_round_plan : &it->key_round_plan[lower];
	if (*plan != NULL)
		return *plan;
	types[n++] = t->atttypid;
	types[n++] = TIDARRAYOID;
	append_bound_types(it, types, &n, lower);

	/*
	 * A generic plan, planned once: it reads the round's rows by TID Scan
	 * whatever their number.  A custom plan sees the round's tids and costs
	 * a TID Scan at one random page read per tid: for rounds of a few
	 * hundred tids on a small table, or of thousands on a large one
	 * (batch_size 100000: 12,500 tids on 1M rows), it picks a Seq Scan
	 * instead, and every round reads the whole table.  A generic plan
	 * estimates a tid[] parameter at a few elements: TID Scan.
	 */
	*plan = prepare_kept_update_plan(t, it->by_ctid ? sql_update_ctid_round(t) :
									 sql_update_key_round(t, lower), n, types,
									 CURSOR_OPT_GENERIC_PLAN);
	return *plan;
}

/* One round of the batch in progress: $1 the value, $2 its tids, then the bounds. */
static int64
update_round(BatchIterator *it)
{
	Datum		args[INDEX_MAX_KEYS * 2 + 2];
	ItemPointerData tids[2];
	int			rc;
	int			nargs;

	args[0] = it->target->written.value;
	args[1] = it->round_tids[it->round];
	nargs = 2 + batch_bound_args(it, &args[2], tids);
	rc = execute_statement(round_plan(it), args, update_nulls(it->target, nargs), false, 0);
	require_batch_done(it->target, rc);
	return (int64) SPI_processed;
}

/* ---------------------------------------------------------------------
 * Common interface
 * --------------------------------------------------------------------- */

bool
iterator_run_batch(BatchIterator *it, int64 *filled, int64 *scanned)
{
	*filled = 0;
	*scanned = 0;
	if (it->finished)
		return false;
	/* a split batch keeps what its first round found: its end included */
	if (!it->in_batch)
		it->finished_at_end = false;
	drop_plans_of_old_name(it);
	return it->by_ctid ? ctid_run_batch(it, filled, scanned)
		: keyset_run_batch(it, filled, scanned);
}

bool
iterator_finished(BatchIterator *it)
{
	return it->finished;
}

/* Rows the next batch covers (about, for block ranges). */
int
iterator_batch_size(BatchIterator *it)
{
	if (!it->by_ctid)
		return it->batch_size;
	return (int) Min((double) INT_MAX,
					 it->stride * Max(1.0, rows_per_block(it->estimated_rows, it->table_blocks)));
}

/* Resize the next batches: adaptive sizing and retries after lock timeouts. */
void
iterator_set_batch_size(BatchIterator *it, int rows)
{
	/*
	 * A batch split into rounds that is resized (a retry after a lock
	 * timeout) starts over with its new size, from the same position: what
	 * its committed rounds filled is no longer NULL and is not written again.
	 */
	it->in_batch = false;
	rows = Max(1, rows);
	if (!it->by_ctid)
		it->batch_size = rows;
	else
	{
		double		per_block = Max(1.0, rows_per_block(it->estimated_rows, it->table_blocks));

		it->stride = (BlockNumber) Max(1.0, rows / per_block);
		it->blocks_per_batch = Min(it->blocks_per_batch, it->stride);
	}
}

/*
 * The blocks the last batch left dead row versions in, if worth pruning:
 * how many ranges, in *ranges (the iterator's, until its next batch).
 */
int
iterator_freed_ranges(BatchIterator *it, const FreedBlocks **ranges)
{
	*ranges = it->freed;
	if (it->nleaf_freed > 0)
		return it->nleaf_freed;
	if (it->freed_end <= it->freed_start)
		return 0;
	reserve_freed(it, 1);
	it->freed[0].relid = InvalidOid;
	it->freed[0].start = it->freed_start;
	it->freed[0].end = it->freed_end;
	*ranges = it->freed;
	return 1;
}

double
iterator_fraction_done(BatchIterator *it)
{
	if (it->finished)
		return 1.0;
	if (it->by_ctid)
		return it->table_blocks > 0 ? (double) it->next_block / it->table_blocks : 0.0;
	if (it->estimated_rows <= 0)
		return 0.0;
	return Min(1.0, it->rows_scanned / it->estimated_rows);
}

double
iterator_estimated_rows(BatchIterator *it)
{
	return it->estimated_rows;
}

static char *
key_text(BatchIterator *it, Datum *key)
{
	BackfillTarget *t = it->target;
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	for (i = 0; i < t->nkeys; i++)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(t->keys[i].typid, &outfunc, &isvarlena);
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 OidOutputFunctionCall(outfunc, key[i]));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* Where the current batch is, for the error context of a failing batch. */
char *
iterator_describe_position(BatchIterator *it)
{
	if (it->by_ctid)
		return psprintf("heap blocks from %u", it->range_start);
	if (!it->has_lower)
		return psprintf("the first %d keys", it->batch_size);
	return psprintf("keys (%s) after %s", sql_key_list(it->target),
					key_text(it, it->lower));
}

bool
iterator_by_ctid(BatchIterator *it)
{
	return it->by_ctid;
}

/* The last key done, for the jobs table; NULL before any batch. */
Datum *
iterator_position_key(BatchIterator *it)
{
	if (it->by_ctid || !it->has_lower)
		return NULL;
	return it->lower;
}

BlockNumber
iterator_position_block(BatchIterator *it)
{
	return it->by_ctid ? it->next_block : InvalidBlockNumber;
}

/* Start after this key (exclusive): a resumed run, or a parallel worker's range. */
void
iterator_start_after_key(BatchIterator *it, Datum *key)
{
	BackfillTarget *t = it->target;
	MemoryContext old = MemoryContextSwitchTo(it->cxt);
	int			i;

	for (i = 0; i < t->nkeys; i++)
		it->lower[i] = datumCopy(key[i], t->keys[i].typbyval, t->keys[i].typlen);
	it->has_lower = true;
	MemoryContextSwitchTo(old);
}

/*
 * Continue where an earlier run stopped: after its saved key (NULL: it has
 * none), or at its saved block; returns the position, for the NOTICE.
 */
char *
iterator_resume(BatchIterator *it, const JobPosition *pos, Datum *key)
{
	if (it->by_ctid)
	{
		if (!pos->has_block)
			return pstrdup("the first block");
		it->next_block = (BlockNumber) pos->block;
		return psprintf("block %u", it->next_block);
	}
	if (key == NULL)
		return pstrdup("the first key");
	iterator_start_after_key(it, key);
	return psprintf("key %s", key_text(it, it->lower));
}

/* Stop this iterator after this key, inclusive (a parallel worker's range). */
void
iterator_limit_keys(BatchIterator *it, Datum *key)
{
	BackfillTarget *t = it->target;
	MemoryContext old = MemoryContextSwitchTo(it->cxt);
	int			i;

	it->end_key = palloc(sizeof(Datum) * t->nkeys);
	for (i = 0; i < t->nkeys; i++)
		it->end_key[i] = datumCopy(key[i], t->keys[i].typbyval, t->keys[i].typlen);
	it->has_end_key = true;
	MemoryContextSwitchTo(old);
}

/* Walk only [start, end) of the heap; end InvalidBlockNumber: to the end. */
void
iterator_limit_blocks(BatchIterator *it, BlockNumber start, BlockNumber end)
{
	it->next_block = start;
	it->has_end_block = BlockNumberIsValid(end);
	it->end_block = end;
}

/* ---------------------------------------------------------------------
 * The row a failed batch of an expression run failed on
 *
 * A value that the column refuses (a domain CHECK, too long for
 * varchar(n), ...) fails the whole batch's UPDATE without saying which row
 * gave it.  Once the batch is rolled back, fill the NULL rows from where the
 * batch started one at a time, each in a subtransaction that is always
 * rolled back, until one fails with the same error (SQLSTATE and message): that row's key (or ctid)
 * is the answer.  At most one batch of rows is tried.
 * --------------------------------------------------------------------- */

/*
 * Fill one row alone and roll it back; true if it fails with the batch's
 * error: the same SQLSTATE and the same message (another row of the batch
 * may fail the same way on its own value, "invalid input syntax for type
 * integer: "SUSAN"", before the one the batch failed on in key order).
 */
static bool
row_fails(SPIPlanPtr plan, Datum relid, Datum tid, int sqlerrcode, const char *message)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Datum		args[2] = {relid, tid};
	bool		failed = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		/* a row another transaction holds is skipped, not waited for */
		if (safe_backfill_batch_lock_timeout_ms > 0)
			set_local_lock_timeout(safe_backfill_batch_lock_timeout_ms);
		(void) execute_statement(plan, args, NULL, false, 0);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		failed = edata->sqlerrcode == sqlerrcode &&
			strcmp(edata->message ? edata->message : "", message ? message : "") == 0;
		FreeErrorData(edata);
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return failed;
}

static char *
describe_row(BatchIterator *it, HeapTuple tuple, TupleDesc desc, bool by_ctid)
{
	BackfillTarget *t = it->target;
	Datum	   *key;
	bool		isnull;
	int			i;

	if (by_ctid)
		return psprintf("the row at ctid %s",
						SPI_getvalue(tuple, desc, 2));
	key = palloc(sizeof(Datum) * t->nkeys);
	for (i = 0; i < t->nkeys; i++)
		key[i] = SPI_getbinval(tuple, desc, i + 3, &isnull);
	return psprintf("the row with key (%s) = %s", sql_key_list(t), key_text(it, key));
}

/*
 * "the row with key (id) = (42)" or "the row at ctid (3,7)", or NULL if no
 * row of the batch fails alone (the error came from something else).
 */
char *
iterator_find_failing_row(BatchIterator *it, int sqlerrcode, const char *message)
{
	BackfillTarget *t = it->target;
	bool		by_ctid = it->by_ctid || t->nkeys == 0;
	bool		has_lower = !by_ctid && it->has_lower;
	int			nargs = by_ctid ? 2 : (has_lower ? t->nkeys : 0) + 1;
	Oid		   *types = palloc(sizeof(Oid) * (t->nkeys + 2));
	Datum	   *args = palloc(sizeof(Datum) * (t->nkeys + 2));
	ItemPointerData first;
	SPIPlanPtr	one_row;
	char	   *found = NULL;
	uint64		i;
	int			n = 0;

	if (by_ctid)
	{
		types[n] = TIDOID;
		args[n++] = block_start_tid(&first, it->range_start);
	}
	else if (has_lower)
		for (n = 0; n < t->nkeys; n++)
		{
			types[n] = t->keys[n].typid;
			args[n] = it->lower[n];
		}
	types[n] = INT8OID;
	args[n++] = Int64GetDatum((int64) Max(1, iterator_batch_size(it)));

	if (SPI_execute_with_args(sql_expression_rows_from(t, by_ctid, has_lower), nargs,
							  types, args, NULL, true, 0) != SPI_OK_SELECT)
		return NULL;
	{
		SPITupleTable *rows = SPI_tuptable;
		uint64		nrows = SPI_processed;
		Oid			one_row_types[2] = {OIDOID, TIDOID};

		one_row = prepare_statement(t, sql_compute_one_row(t), 2, one_row_types, 0);
		for (i = 0; i < nrows && found == NULL; i++)
		{
			bool		isnull;
			Datum		relid = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);
			Datum		tid = SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull);

			CHECK_FOR_INTERRUPTS();
			if (row_fails(one_row, relid, tid, sqlerrcode, message))
				found = describe_row(it, rows->vals[i], rows->tupdesc, by_ctid);
		}
		SPI_freeplan(one_row);
	}
	return found;
}
