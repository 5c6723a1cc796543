/*
 * xact.c
 *		Transaction control and waiting, for every module: the ground
 *		layer's commit and sleep, so that no lower module calls up into the
 *		drivers that use them.
 */
#include "safe_backfill.h"
#include "src/xact.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

/* Commit, and be in a new transaction on every version (see compat.h). */
void
commit_transaction(void)
{
	SPI_commit();
	compat_spi_start_transaction();
}

/* Milliseconds since start. */
double
elapsed_ms(TimestampTz start)
{
	return (double) (GetCurrentTimestamp() - start) / 1000.0;
}

/* Sleep without ignoring a cancel. */
void
sleep_interruptibly(int ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}
