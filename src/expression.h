/*
 * expression.h
 *		expression => '...': parse and analyse once; statements run the analysed tree.
 */
#ifndef SAFE_BACKFILL_EXPRESSION_H
#define SAFE_BACKFILL_EXPRESSION_H

#include "safe_backfill.h"

extern void prepare_expression(BackfillTarget *target, const char *text);
extern void use_expression_tree(BackfillTarget *target, const char *text, Node *tree);
extern SPIPlanPtr prepare_statement(BackfillTarget *target, const char *sql, int nargs,
									Oid *argtypes, int cursor_options);
extern int	execute_statement(SPIPlanPtr plan, Datum *args, const char *nulls,
							  bool read_only, long count);
extern int64 count_computable_nulls(BackfillTarget *target);

#endif							/* SAFE_BACKFILL_EXPRESSION_H */
