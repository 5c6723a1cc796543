/*
 * keys.h
 *		Keys in the text form the jobs tables keep.
 */
#ifndef SAFE_BACKFILL_KEYS_H
#define SAFE_BACKFILL_KEYS_H

#include "safe_backfill.h"

extern char *canonical_text(Oid typid, Datum value);
extern int	canonical_setting_count(void);
extern void canonical_setting(int i, const char **name, const char **value);
extern ArrayType *canonical_key_array(BackfillTarget *t, Datum *key);
extern void canonical_key_parse(BackfillTarget *t, Datum *texts, Datum *key);
extern Datum *canonical_key_from_array(BackfillTarget *t, ArrayType *array);

extern Datum *key_from_tuple(BackfillTarget *t, HeapTuple tuple, TupleDesc desc,
							 Datum *dst);

#endif							/* SAFE_BACKFILL_KEYS_H */
