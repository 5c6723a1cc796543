/*
 * expression.h
 *		expression => '...': parse and analyse once; statements run the analysed tree.
 */
#ifndef SAFE_BACKFILL_EXPRESSION_H
#define SAFE_BACKFILL_EXPRESSION_H

#include "safe_backfill.h"

/* Errors raised while an argument's text is parsed, analysed or probed point into it. */
typedef struct ArgumentErrorContext
{
	BackfillTarget *target;
	const char *argname;
	const char *text;
	int			offset;			/* characters parsed before the text */
	ErrorContextCallback callback;
} ArgumentErrorContext;

extern void push_argument_context(ArgumentErrorContext *ctx, BackfillTarget *target,
								  const char *argname, const char *text, int offset);
extern void pop_argument_context(ArgumentErrorContext *ctx);
extern Node *parse_one_expression(struct ParseState *pstate, const char *text,
								  const char *argname);
extern void refuse_other_rows(struct ParseState *pstate, Node *expr, const char *argname);
extern Oid	temp_relation_read(Node *expr);
extern void prepare_expression(BackfillTarget *target, const char *text);
extern void use_expression_tree(BackfillTarget *target, const char *text, Node *tree);
extern SPIPlanPtr prepare_statement(BackfillTarget *target, const char *sql, int nargs,
									Oid *argtypes, int cursor_options);
extern int	execute_statement(SPIPlanPtr plan, Datum *args, const char *nulls,
							  bool read_only, long count);
extern int64 count_computable_nulls(BackfillTarget *target);
extern void run_tree_counts(BackfillTarget *target, const char *sql, const char *what,
							int64 *counts, int ncounts);

#endif							/* SAFE_BACKFILL_EXPRESSION_H */
