/*
 * space.c
 *		Let the next batches reuse the space the previous one freed.
 *
 * Every UPDATE writes a new row version; on full pages it lands elsewhere,
 * so any backfill doubles the table.  Right after a batch commits, the old
 * versions it left are dead to everyone (unless an older snapshot is still
 * open).  We do to the pages that held them what any page access does -
 * heap_page_prune_opt(), which prunes only when worthwhile and only if it
 * gets the cleanup lock without waiting - and then tell the free space map
 * how much room they have, so the next batch's new versions go there instead
 * of to new pages at the end of the table.  No VACUUM, no waiting.
 *
 * All of that is heap internals, valid only for tables of the heap access
 * method: like amcheck's verify_heapam we check relam, and leave tables of
 * any other access method alone (saying so once per run).  Walking a table
 * by ranges of blocks relies on heap tids too: see require_heap_for_ctid.
 */
#include "safe_backfill.h"
#include "src/citus_nodes.h"
#include "src/settings.h"
#include "src/space.h"
#include "src/sqlgen.h"
#include "src/target.h"

#include "access/heapam.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "commands/defrem.h"
#include "nodes/bitmapset.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/*
 * Prune [start, end) of the table and, if record, tell the free space map
 * how much room the pages have.
 */
static uint64
prune_and_record(Relation rel, BlockNumber start, BlockNumber end,
				 BufferAccessStrategy strategy, bool record)
{
	BlockNumber blk;
	uint64		recorded = 0;

	for (blk = start; blk < end; blk++)
	{
		Buffer		buf;
		Size		freespace;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, strategy);
		heap_page_prune_opt(rel, buf);
		if (!record)
		{
			ReleaseBuffer(buf);
			continue;
		}
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		freespace = PageGetHeapFreeSpace(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(rel, blk, freespace);
		recorded += freespace;
	}
	/* make the upper FSM levels see it, or searches would not find it */
	if (record)
		FreeSpaceMapVacuumRange(rel, start, end);
	return recorded;
}

/* Whether relid's access method is heap itself (a copy of its handler is not). */
static bool
relation_is_heap(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	bool		heap;

	if (!HeapTupleIsValid(tup))
		return true;			/* dropped: recheck_target will say so */
	heap = ((Form_pg_class) GETSTRUCT(tup))->relam == HEAP_TABLE_AM_OID;
	ReleaseSysCache(tup);
	return heap;
}

/* The first leaf of relid that is not a heap table, or InvalidOid. */
static Oid
first_non_heap_storage(Oid relid)
{
	ListCell   *lc;

	foreach(lc, storage_relations(relid))
	{
		if (!relation_is_heap(lfirst_oid(lc)))
			return lfirst_oid(lc);
	}
	return InvalidOid;
}

static char *
access_method_name(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			amoid;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		return pstrdup("?");
	amoid = ((Form_pg_class) GETSTRUCT(tup))->relam;
	ReleaseSysCache(tup);
	name = get_am_name(amoid);
	return name ? name : pstrdup("?");
}


/*
 * Walking a table by ranges of blocks (no primary key, or
 * safe_backfill.iteration = ctid) takes a batch's size from the heap's rows
 * per block; another access method's tids need not map to its blocks at all,
 * and one open-ended "range" could then rewrite the whole table in one
 * transaction.  Refuse before anything is changed.
 */
void
require_heap_for_ctid(BackfillTarget *target)
{
	Oid			leaf = first_non_heap_storage(target->relid);

	if (!OidIsValid(leaf))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("safe_backfill: %s cannot be walked by ranges of blocks",
					target->display),
			 errdetail("Table %s uses access method \"%s\"; batches by block ranges need the heap access method. Nothing was changed.",
					   sql_qualified_relation(leaf), access_method_name(leaf)),
			 errhint("Give the table a primary key (then it is walked by key), or fill it with plain UPDATE statements.")));
}

static void
reuse_in_relation(BackfillTarget *target, Oid relid, BlockNumber start, BlockNumber end,
				  bool record)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	BlockNumber nblocks;

	if (rel == NULL)
		return;					/* dropped: recheck_target will say so */
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		if (!target->run.said_no_space_reuse)
			ereport(NOTICE,
					(errmsg("safe_backfill: %s: no space reuse for table %s, whose access method is not heap",
							target->display, sql_qualified_relation(relid)),
					 errdetail("Pruning pages and recording their free space are heap internals; the table may grow by the rows rewritten until it is vacuumed.")));
		target->run.said_no_space_reuse = true;
		relation_close(rel, AccessShareLock);
		return;
	}
	nblocks = RelationGetNumberOfBlocks(rel);
	if (start < nblocks)
	{
		/* what the pages a run pruned have free: safe_delete reports it */
		target->run.free_recorded +=
			prune_and_record(rel, start, Min(end, nblocks), NULL, record);
		if (record)
			target->run.pages_pruned += Min(end, nblocks) - start;
	}
	relation_close(rel, AccessShareLock);
}

static void
reuse_freed_blocks(BackfillTarget *target, const FreedBlocks *ranges, int nranges,
				   bool record)
{
	ListCell   *lc;
	int			i;

	if (!safe_backfill_reuse_space || nranges <= 0)
		return;

	/*
	 * A snapshot taken now moves the horizon heap_page_prune_opt() tests
	 * against past the batch that just committed; the one from before the
	 * commit would call its dead versions still needed.
	 */
	(void) GetTransactionSnapshot();
	for (i = 0; i < nranges; i++)
	{
		const FreedBlocks *r = &ranges[i];

		if (r->start >= r->end)
			continue;
		if (OidIsValid(r->relid))
			reuse_in_relation(target, r->relid, r->start, r->end, record);
		else
			foreach(lc, storage_relations(target->relid))
				reuse_in_relation(target, lfirst_oid(lc), r->start, r->end, record);
	}
}

/*
 * Called at the start of the transaction after a batch committed, with the
 * block ranges that held the rows the batch rewrote: one range, in every
 * partition for a partitioned table walked by block ranges; one in each
 * leaf the batch wrote in, for one walked by key.
 */
void
reuse_freed_space(BackfillTarget *target, const FreedBlocks *ranges, int nranges)
{
	reuse_freed_blocks(target, ranges, nranges, true);
}

/*
 * Between two HOT rounds of a batch: prune its pages, so that the next
 * round's rows are rewritten on their own page, but keep their room out of
 * the free space map.  Advertised there, it would draw the rows of the
 * batch's other pages that do not fit on their own, each taking the room a
 * page keeps for its next round, which then has to move as well.  The
 * batch's last round records it (reuse_freed_space): the next batch's first
 * round moves its rows there.
 */
void
prune_between_rounds(BackfillTarget *target, const FreedBlocks *ranges, int nranges)
{
	reuse_freed_blocks(target, ranges, nranges, false);
}

/*
 * Whether pruning the table now removes the row versions that transaction
 * xid (committed) left dead: no snapshot that could still see them is left.
 * The horizon asked is the table's own, the one heap_page_prune_opt() tests
 * against (GlobalVisTestFor): it counts the backends of this database only
 * (and those that hold back every database's, a standby's feedback), not a
 * transaction open in another database, which the shared horizon
 * (GetOldestNonRemovableTransactionId(NULL)) would wait for in vain.  Takes
 * no snapshot: the catalog snapshot opening the table may take is dropped.
 */
bool
table_horizon_passed(Oid relid, TransactionId xid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	TransactionId horizon;

	if (rel == NULL)
		return true;			/* dropped: recheck_target will say so */
	horizon = GetOldestNonRemovableTransactionId(rel);
	relation_close(rel, AccessShareLock);
	InvalidateCatalogSnapshot();
	return TransactionIdPrecedes(xid, horizon);
}

/*
 * Who holds back the table's horizon at transaction xid, for a NOTICE:
 * "pid 123 (idle in transaction, transaction open 35.2 s)" and its *pid,
 * or NULL if no session shows it (a prepared transaction or a replication
 * slot can).  Read from pg_stat_activity, with what the caller may see of it.
 */
char *
describe_horizon_holder(TransactionId xid, int *pid)
{
	Oid			argtypes[2] = {XIDOID, OIDOID};
	Datum		args[2] = {TransactionIdGetDatum(xid), ObjectIdGetDatum(MyDatabaseId)};
	char	   *holder = NULL;
	int			rc;

	rc = SPI_execute_with_args(sql_horizon_holder(), 2, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "safe_backfill: horizon holder query failed: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *state = SPI_getvalue(tup, desc, 2);
		char	   *type = SPI_getvalue(tup, desc, 3);
		char	   *open_s = SPI_getvalue(tup, desc, 4);

		*pid = atoi(SPI_getvalue(tup, desc, 1));
		if (state == NULL || open_s == NULL)
			holder = psprintf("pid %s (%s, whose state this role may not see)",
							  SPI_getvalue(tup, desc, 1), type ? type : "a session");
		else
			holder = psprintf("pid %s (%s%s%s, transaction open %.1f s)",
							  SPI_getvalue(tup, desc, 1), state,
							  type && strcmp(type, "client backend") != 0 ? ", " : "",
							  type && strcmp(type, "client backend") != 0 ? type : "",
							  strtod(open_s, NULL));
	}
	SPI_freetuptable(SPI_tuptable);
	return holder;
}

/*
 * Why no UPDATE of the column can be HOT in one of the table's leaves, or
 * NULL if it can in all of them (see "HOT rounds" in iterate.c): the column
 * is part of an index (a key, an expression or a partial index's
 * predicate), or the table's access method is not heap, whose HOT chains
 * and pruning the rounds rely on.  A partition's column may have another
 * number than the parent's: it is looked up by name.
 */
/* Why no update of the column of rel can be HOT, or NULL. */
static char *
column_blocks_hot(Relation rel, const char *colname)
{
	Oid			relid = RelationGetRelid(rel);
	AttrNumber	attnum = get_attnum(relid, colname);
	Bitmapset  *indexed;
	char	   *why = NULL;

	if (attnum == InvalidAttrNumber)
		return NULL;
	indexed = RelationGetIndexAttrBitmap(rel, COMPAT_INDEX_ATTR_BITMAP_HOT_BLOCKING);
	if (bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, indexed))
		why = psprintf("column \"%s\" is part of an index of table %s (a key, an expression or a partial index's predicate)",
					   colname, sql_qualified_relation(relid));

	/*
	 * An expression or predicate on the whole row (f(t)) depends on every
	 * column: heap_update never takes it as unchanged.
	 */
	else if (bms_is_member(InvalidAttrNumber - FirstLowInvalidHeapAttributeNumber, indexed))
		why = psprintf("an index of table %s has an expression or predicate on the whole row",
					   sql_qualified_relation(relid));
	bms_free(indexed);
	return why;
}

char *
hot_update_blocker(BackfillTarget *target)
{
	ListCell   *lc;
	int			i;

	/* rounds make room for new row versions: these write none */
	if (target->change.dry_run)
		return pstrdup("a dry run changes no row");
	if (target->change.kind == CHANGE_DELETE)
		return pstrdup("a DELETE writes no new row versions");

	/*
	 * Each round commits part of a batch, and the saved position moves only
	 * when the batch is done: a fill redone after an error or a crash writes
	 * only the rows still NULL, but safe_update would change the rows of the
	 * rounds already committed again.  Its batches commit whole.
	 */
	if (target->change.kind == CHANGE_UPDATE)
		return pstrdup("safe_update commits each batch whole, so that a resumed run changes no row twice");

	/*
	 * A Citus reference table's rows are in a copy on every node, each with
	 * its own tids: a round's tids, read from one copy, would pick other rows
	 * in the others.
	 */
	if (citus_table_kind(target->relid) != CITUS_TABLE_NONE)
		return psprintf("table %s is a Citus table, whose rows are in copies with tids of their own",
						sql_qualified_relation(target->relid));
	foreach(lc, storage_relations(target->relid))
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel = try_relation_open(relid, AccessShareLock);
		char	   *why = NULL;

		if (rel == NULL)
			continue;			/* dropped: recheck_target will say so */
		if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
			why = psprintf("table %s uses access method \"%s\", not heap",
						   sql_qualified_relation(relid), access_method_name(relid));
		else if (target->change.kind == CHANGE_FILL)
			why = column_blocks_hot(rel, target->colname);
		else
			for (i = 0; i < target->change.nset && why == NULL; i++)
				why = column_blocks_hot(rel, target->change.set[i].name);
		relation_close(rel, AccessShareLock);
		if (why)
			return why;
	}
	return NULL;
}
