/*
 * compat.h
 *		Differences between the PostgreSQL versions safe_backfill builds
 *		against (14 to 18), in one place.
 *
 * Every other file calls the names defined here and carries no
 * PG_VERSION_NUM tests of its own.  Included from safe_backfill.h.
 */
#ifndef SAFE_BACKFILL_COMPAT_H
#define SAFE_BACKFILL_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 140000
#error "safe_backfill needs PostgreSQL 14 or later"
#endif

/*
 * 15 pulls these in through other headers, 14 does not: RELKIND_* and
 * RelationGetDescr.
 */
#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM >= 150000
#include "common/pg_prng.h"
#endif
#if PG_VERSION_NUM >= 180000
#include "catalog/pg_constraint.h"
#endif

/* 17 asks whether a stronger mode than the one named counts too. */
#if PG_VERSION_NUM >= 170000
#define compat_lock_held_by_me(tag, mode)	LockHeldByMe((tag), (mode), false)
#else
#define compat_lock_held_by_me(tag, mode)	LockHeldByMe((tag), (mode))
#endif

/*
 * Only the SQL entry points, _PG_init and the parallel worker's entry point
 * are exported: the Makefile compiles with -fvisibility=hidden (16's PGXS
 * does so itself), so that none of our internal names can clash with
 * another library's in the same backend (Citus, say).  16 defines
 * PGDLLEXPORT as visibility "default"; 14 and 15 define it empty on Unix.
 */
#if PG_VERSION_NUM < 160000 && defined(__GNUC__) && !defined(WIN32)
#undef PGDLLEXPORT
#define PGDLLEXPORT __attribute__((visibility("default")))
#endif

/*
 * 18 has NOT NULL constraints in pg_constraint, which can be added NOT VALID
 * and validated later: safe_set_not_null uses them instead of a helper CHECK.
 */
#define HAVE_NOT_NULL_NOT_VALID (PG_VERSION_NUM >= 180000)

/*
 * The primary key usable as a keyset.  18 added deferrable_ok; earlier
 * versions never return a deferrable primary key, so neither do we.
 */
#if PG_VERSION_NUM >= 180000
#define compat_primary_key_index(rel)	RelationGetPrimaryKeyIndex((rel), false)
#else
#define compat_primary_key_index(rel)	RelationGetPrimaryKeyIndex(rel)
#endif

/* 16 replaced the per-catalog ownership checks with object_ownercheck. */
#if PG_VERSION_NUM >= 160000
#define compat_table_ownercheck(relid, role) \
	object_ownercheck(RelationRelationId, (relid), (role))
#else
#define compat_table_ownercheck(relid, role) \
	pg_class_ownercheck((relid), (role))
#endif

/*
 * Make unknown safe_backfill.* settings an error.  14 cannot reserve a
 * prefix; it can only warn about placeholders that exist when we load.
 */
#if PG_VERSION_NUM >= 150000
#define compat_reserve_guc_prefix(prefix)	MarkGUCPrefixReserved(prefix)
#else
#define compat_reserve_guc_prefix(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/* A random number in [0, 1): 15 has its own PRNG, 14 only random(). */
static inline double
compat_random_fraction(void)
{
#if PG_VERSION_NUM >= 150000
	return pg_prng_double(&pg_global_prng_state);
#else
	return (double) random() / ((double) MAX_RANDOM_VALUE + 1);
#endif
}

/*
 * After SPI_commit the next transaction starts by itself from 15 on; on 14
 * the caller has to start it.
 */
#if PG_VERSION_NUM >= 150000
#define compat_spi_start_transaction()	((void) 0)
#else
#define compat_spi_start_transaction()	SPI_start_transaction()
#endif

/*
 * Does the column have a NOT NULL the table's rows are known to satisfy?
 * From 18 on attnotnull is also set by a NOT VALID not-null constraint, which
 * proves nothing about the rows already there.
 */
static inline bool
compat_column_is_not_null(Oid relid, Form_pg_attribute att)
{
#if PG_VERSION_NUM >= 180000
	HeapTuple	tup;
	bool		valid;

	if (!att->attnotnull)
		return false;
	tup = findNotNullConstraintAttnum(relid, att->attnum);
	if (!HeapTupleIsValid(tup))
		return false;
	valid = ((Form_pg_constraint) GETSTRUCT(tup))->convalidated;
	heap_freetuple(tup);
	return valid;
#else
	return att->attnotnull;
#endif
}

/*
 * The columns whose change makes an UPDATE non-HOT.  16 split out the
 * columns only summarizing indexes (BRIN) cover, which no longer block HOT;
 * before, every indexed column did.
 */
#if PG_VERSION_NUM >= 160000
#define COMPAT_INDEX_ATTR_BITMAP_HOT_BLOCKING	INDEX_ATTR_BITMAP_HOT_BLOCKING
#else
#define COMPAT_INDEX_ATTR_BITMAP_HOT_BLOCKING	INDEX_ATTR_BITMAP_ALL
#endif

/*
 * 17 gave a wait event set to a resource owner, which frees it on abort,
 * instead of a memory context.
 */
#if PG_VERSION_NUM >= 170000
#define COMPAT_CREATE_WAIT_EVENT_SET(nevents) CreateWaitEventSet(CurrentResourceOwner, (nevents))
#else
#define COMPAT_CREATE_WAIT_EVENT_SET(nevents) CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/*
 * An UPDATE statement's RETURNING list, as parsed: 18 wraps it in a
 * ReturningClause (with the new OLD/NEW aliases).
 */
#if PG_VERSION_NUM >= 180000
#define COMPAT_UPDATE_RETURNING(stmt) \
	((stmt)->returningClause ? (stmt)->returningClause->exprs : NIL)
#else
#define COMPAT_UPDATE_RETURNING(stmt) ((stmt)->returningList)
#endif

#endif							/* SAFE_BACKFILL_COMPAT_H */
