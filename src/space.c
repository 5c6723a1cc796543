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
 */
#include "safe_backfill.h"

#include "access/heapam.h"
#include "access/relation.h"
#include "access/table.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

bool		safe_backfill_reuse_space = true;

/* Prune [start, end) of the table and record the free space found. */
static void
prune_and_record(Relation rel, BlockNumber start, BlockNumber end,
				 BufferAccessStrategy strategy)
{
	BlockNumber blk;

	for (blk = start; blk < end; blk++)
	{
		Buffer		buf;
		Size		freespace;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, strategy);
		heap_page_prune_opt(rel, buf);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		freespace = PageGetHeapFreeSpace(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		RecordPageWithFreeSpace(rel, blk, freespace);
	}
	/* make the upper FSM levels see it, or searches would not find it */
	FreeSpaceMapVacuumRange(rel, start, end);
}

static void
reuse_in_relation(Oid relid, BlockNumber start, BlockNumber end)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	BlockNumber nblocks;

	if (rel == NULL)
		return;					/* dropped: recheck_target will say so */
	nblocks = RelationGetNumberOfBlocks(rel);
	if (start < nblocks)
		prune_and_record(rel, start, Min(end, nblocks), NULL);
	relation_close(rel, AccessShareLock);
}

/*
 * Called at the start of the transaction after a batch committed, with the
 * block range that held the rows the batch rewrote (in every partition, for
 * a partitioned table walked by block ranges).
 */
void
reuse_freed_space(BackfillTarget *target, BlockNumber start, BlockNumber end)
{
	ListCell   *lc;

	if (!safe_backfill_reuse_space || start >= end)
		return;

	/*
	 * A snapshot taken now moves the horizon heap_page_prune_opt() tests
	 * against past the batch that just committed; the one from before the
	 * commit would call its dead versions still needed.
	 */
	(void) GetTransactionSnapshot();
	foreach(lc, storage_relations(target->relid))
		reuse_in_relation(lfirst_oid(lc), start, end);
}
