/*
 * keys.c
 *		Key values in the text form the jobs tables keep: written and read
 *		back under fixed settings, so that a session with another DateStyle
 *		or TimeZone resumes at the same key.  The only place where a key
 *		becomes text.
 */
#include "safe_backfill.h"
#include "src/keys.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

/* ---------------------------------------------------------------------
 * Positions in the jobs table: canonical text
 *
 * The jobs table keeps the last key done as text[], which another session,
 * with other settings, reads back to resume.  A key's text form depends on
 * the session (DateStyle 'SQL, DMY' writes 01/02/2024 for February 1st and
 * reads it back as January 2nd; a TimeZone abbreviation such as IST means
 * something else elsewhere), so every key is written and read under the same
 * fixed settings, set in a GUC nest level of their own and undone right after.
 * --------------------------------------------------------------------- */

static const char *const canonical_settings[][2] = {
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	{"xmloption", "content"},
};

/* The canonical settings, for a session elsewhere that reads our text. */
int
canonical_setting_count(void)
{
	return lengthof(canonical_settings);
}

void
canonical_setting(int i, const char **name, const char **value)
{
	*name = canonical_settings[i][0];
	*value = canonical_settings[i][1];
}

static int
enter_canonical_settings(void)
{
	int			nest = NewGUCNestLevel();
	int			i;

	for (i = 0; i < lengthof(canonical_settings); i++)
		(void) set_config_option(canonical_settings[i][0], canonical_settings[i][1],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	return nest;
}

static void
leave_canonical_settings(int nest)
{
	AtEOXact_GUC(true, nest);
}

/* A value's text in the canonical settings: the same in every session. */
char *
canonical_text(Oid typid, Datum value)
{
	int			nest = enter_canonical_settings();
	Oid			outfunc;
	bool		isvarlena;
	char	   *text;

	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	text = OidOutputFunctionCall(outfunc, value);
	leave_canonical_settings(nest);
	return text;
}

/* The key as canonical text[]: the position the jobs table records. */
ArrayType *
canonical_key_array(BackfillTarget *t, Datum *key)
{
	Datum	   *texts = palloc(sizeof(Datum) * t->nkeys);
	int			i;

	for (i = 0; i < t->nkeys; i++)
		texts[i] = CStringGetTextDatum(canonical_text(t->keys[i].typid, key[i]));
	return construct_array(texts, t->nkeys, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * Read back a key written by canonical_key_array (text datums, nkeys of
 * them) into key[], allocated in the current memory context.
 */
void
canonical_key_parse(BackfillTarget *t, Datum *texts, Datum *key)
{
	int			nest = enter_canonical_settings();
	int			i;

	for (i = 0; i < t->nkeys; i++)
	{
		Oid			infunc;
		Oid			ioparam;

		getTypeInputInfo(t->keys[i].typid, &infunc, &ioparam);
		key[i] = OidInputFunctionCall(infunc, TextDatumGetCString(texts[i]),
									  ioparam, -1);
	}
	leave_canonical_settings(nest);
}

/*
 * A key the jobs tables recorded (the literal of its canonical text[]),
 * read back with the key's current types; NULL for NULL.  A key whose
 * columns no longer match the primary key is an error: the caller drops
 * such a position (see resume in backfill.c).
 */
Datum *
canonical_key_from_array(BackfillTarget *t, ArrayType *array)
{
	Datum	   *texts;
	Datum	   *key;
	int			n;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &texts, NULL, &n);
	if (n != t->nkeys)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("the saved key has %d columns, the primary key %d", n, t->nkeys),
				 errhint("The primary key changed since the position was saved; call safe_backfill again, and it starts over.")));
	key = palloc(sizeof(Datum) * n);
	canonical_key_parse(t, texts, key);
	return key;
}

/*
 * The key in the first nkeys columns of a tuple, copied, in the current
 * memory context: into dst (whose by-reference values are freed first), or
 * into a new array when dst is NULL.
 */
Datum *
key_from_tuple(BackfillTarget *t, HeapTuple tuple, TupleDesc desc, Datum *dst)
{
	int			i;

	if (dst == NULL)
		dst = palloc0(sizeof(Datum) * t->nkeys);
	for (i = 0; i < t->nkeys; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(tuple, desc, i + 1, &isnull);

		if (!t->keys[i].typbyval && DatumGetPointer(dst[i]) != NULL)
			pfree(DatumGetPointer(dst[i]));
		dst[i] = datumCopy(d, t->keys[i].typbyval, t->keys[i].typlen);
	}
	return dst;
}
