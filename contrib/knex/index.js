'use strict';
/*
 * knex migration helpers for the safe_backfill PostgreSQL extension.
 *
 *   // migrations/20240101000002_backfill_user_status.js
 *   const { safeBackfill } = require('knex-safe-backfill');
 *
 *   exports.config = { transaction: false };   // required: the procedures commit as they go
 *   exports.up = async (knex) => {
 *     await safeBackfill(knex, 'large_user', 'status', 'active', { batchSize: 10000 });
 *     await safeBackfill(knex, 'large_user', 'email_lower', null,
 *                        { expression: knex.raw('lower(??)', ['email']) });
 *   };
 *   exports.down = async () => {};             // the values stay
 *
 *   // other data migrations, batch by batch (exports.config as above)
 *   exports.up = async (knex) => {
 *     await safeUpdate(knex, 'orders', { currency: 'EUR' }, { where: knex.raw('?? = ?', ['currency', 'eur']) });
 *     await safeDelete(knex, 'events', "created_at < now() - interval '90 days'");
 *   };
 *   exports.down = async () => {};             // or throw: nothing brings deleted rows back
 *
 * safeBackfill runs CALL safe_backfill(...): the NULLs of the column are
 * filled batch by batch, each batch committed on its own, so other sessions
 * keep reading and writing the table.  safeSetNotNull runs CALL
 * safe_set_not_null(...): CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then
 * SET NOT NULL, which PostgreSQL proves from the validated check without a
 * scan under ACCESS EXCLUSIVE.  safeUpdate and safeDelete run CALL
 * safe_update(...) / CALL safe_delete(...): the rows that match the where
 * are updated or deleted batch by batch, each batch committed on its own.
 *
 * These procedures COMMIT as they go, which PostgreSQL allows only outside a
 * transaction block, and knex runs each migration in a transaction unless it
 * exports config = { transaction: false }.  Given a transaction
 * (knex.isTransaction), the helpers throw SafeBackfillTransactionError
 * before anything is sent.
 *
 * The table goes in as a quoted name ('"schema"."table"', cast to regclass),
 * the column as a name, the value as a query parameter, an expression, a
 * set list and a where as SQL text parameters: nothing is glued into the
 * CALL.  knex has no reversible migrations: exports.down is yours (a delete
 * cannot be undone; an update only by the update that sets the old values
 * back).  The extension's
 * NOTICEs (progress lines, summary) are printed as they arrive (node-pg's
 * 'notice' event), to console.log or opts.log.
 *
 * Detached runs (two deploys): safeBackfill(knex_or_trx, ..., { detached:
 * true }) queues the run (SELECT safe_backfill_start(...)), which a
 * background worker of the server runs once the caller's transaction
 * commits: a trx (a migration's default transaction) is fine, and it
 * returns the run's id at once.  A later migration waits for it with
 * ensureBackfillFinished(knex, table, column) (CALL safe_backfill_wait,
 * which needs exports.config = { transaction: false }) before
 * safeSetNotNull.
 */

class SafeBackfillTransactionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'SafeBackfillTransactionError';
  }
}

const WHY = (procedure) =>
  `CALL ${procedure} commits as it goes, which PostgreSQL allows only outside a transaction block`;

// A PostgreSQL identifier, quoted as quote_ident does.  (knex's own
// wrapIdentifier would also apply the knexfile's wrapIdentifier hook and
// its array-subscript syntax, neither of which belongs in a table name.)
function quoteIdent(name) {
  return '"' + String(name).replace(/"/g, '""') + '"';
}

// 'table' with opts.schema, or 'schema.table' as knex understands it.
function qualifiedTable(table, schema) {
  if (schema == null && String(table).includes('.')) {
    const dot = String(table).indexOf('.');
    schema = String(table).slice(0, dot);
    table = String(table).slice(dot + 1);
  }
  return schema == null ? quoteIdent(table) : `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

function requirePostgres(knex, helper, target) {
  if (!knex || typeof knex.raw !== 'function' || !knex.client) {
    throw new TypeError(`${helper}(${target}): the first argument must be the knex instance`);
  }
  const dialect = knex.client.dialect || (knex.client.config && knex.client.config.client);
  if (!/^(postgres(ql)?|pg)$/.test(String(dialect))) {
    throw new Error(`${helper}(${target}) needs PostgreSQL with the safe_backfill extension, not ${dialect}.`);
  }
}

// helper: the function's name; procedure: the SQL procedure it calls.
function requireOutsideTransaction(knex, helper, procedure, target) {
  requirePostgres(knex, helper, target);
  if (knex.isTransaction) {
    throw new SafeBackfillTransactionError(
      `${helper}(${target}) cannot run in a transaction: ${WHY(procedure)}, and it was ` +
      'given a transaction (knex runs each migration in one unless the migration file ' +
      'says otherwise). Add "exports.config = { transaction: false };" to the migration ' +
      'file and pass it the knex it gets, or outside migrations call it with the knex ' +
      'instance, not a trx. Nothing was changed.');
  }
}

// SQL text of an expression: a string as written, a knex.raw() with its
// bindings inlined by knex's PostgreSQL quoting.  what: the argument, for
// the error.
function expressionSql(expression, what = 'safeBackfill: expression') {
  if (typeof expression === 'string') return expression;
  if (isRaw(expression)) return expression.toQuery();
  throw new TypeError(`${what} ${String(expression)} is neither SQL text nor knex.raw()`);
}

function isRaw(value) {
  return value !== null && typeof value === 'object' && typeof value.toQuery === 'function';
}

// A constant as a SQL literal, by knex's PostgreSQL quoting (strings,
// numbers, booleans, null, arrays); a plain object as its JSON text (as
// node-pg sends one), a Date as its ISO 8601 text (UTC, with its offset),
// each then quoted as a string.  The column's type reads it, as in an UPDATE.
function literalSql(knex, value) {
  if (value instanceof Date) value = value.toISOString();
  else if (value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
    value = JSON.stringify(value);
  }
  return knex.raw('?', [value]).toQuery();
}

// The set text for CALL safe_update(..., set => ...): a string (or
// knex.raw()) as what follows SET, or an object { column: value } where a
// value is knex.raw() (computed for each row) or a constant.
function setListSql(knex, set) {
  if (typeof set === 'string' || isRaw(set)) return expressionSql(set, 'safeUpdate: set');
  if (set === null || typeof set !== 'object' || Array.isArray(set) || Object.keys(set).length === 0) {
    throw new TypeError(`safeUpdate: set ${String(set)} is neither SQL text, knex.raw() nor a ` +
                        'non-empty object { column: value }');
  }
  return Object.entries(set).map(([column, value]) =>
    `${quoteIdent(column)} = ${isRaw(value) ? expressionSql(value) : literalSql(knex, value)}`).join(', ');
}

function printNotice(log) {
  return (msg) => {
    log(`${msg.severity || 'NOTICE'}:  ${msg.message}`);
    if (msg.detail) log(`DETAIL:  ${msg.detail}`);
  };
}

// Run CALL procedure(name => ?, ...) on a pooled connection of its own
// (not in a transaction: knex is not a trx), printing NOTICEs.
async function callProcedure(knex, procedure, target, args, log) {
  const sql = `CALL ${procedure}(${args.map(([name, , cast]) => `${name} => ?${cast || ''}`).join(', ')})`;
  const bindings = args.map(([, value]) => value);
  const connection = await knex.client.acquireConnection();
  const onNotice = printNotice(log || console.log);
  connection.on('notice', onNotice);
  try {
    await knex.raw(sql, bindings).connection(connection);
  } catch (error) {
    if (error && error.code === '2D000') {
      throw new SafeBackfillTransactionError(
        `${procedure}(${target}) ran inside a transaction block (SQLSTATE 2D000): ` +
        `${WHY(procedure)}. Add "exports.config = { transaction: false };" to the ` +
        'migration file. Nothing was changed.', { cause: error });
    }
    throw error;
  } finally {
    connection.removeListener('notice', onNotice);
    await knex.client.releaseConnection(connection);
  }
}

function optional(args, name, value, cast) {
  if (value !== undefined && value !== null) args.push([name, value, cast]);
}

function checkBatchSize(batchSize) {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new TypeError(`batchSize must be a positive integer, not ${batchSize}`);
  }
}

// The batching arguments safeBackfill, safeUpdate and safeDelete share.
function batchArgs(args, opts, batchSize) {
  args.push(['batch_size', batchSize, '::pg_catalog.int4']);
  optional(args, 'pause_ms', opts.pauseMs, '::pg_catalog.int4');
  optional(args, 'target_batch_ms', opts.targetBatchMs, '::pg_catalog.int4');
  optional(args, 'max_replica_lag', opts.maxReplicaLag, '::pg_catalog.interval');
  optional(args, 'workers', opts.workers, '::pg_catalog.int4');
  optional(args, 'resume', opts.resume, '::pg_catalog.bool');
  optional(args, 'dry_run', opts.dryRun, '::pg_catalog.bool');
}

/**
 * Fill the NULLs of table.column in batches of opts.batchSize rows (default
 * 10000), each committed on its own (CALL safe_backfill), with either
 *   value              a constant, sent as a query parameter (a string is
 *                      read by the column type's input function, like a
 *                      literal in an UPDATE); or
 *   opts.expression    SQL text or knex.raw(), computed for each row from its
 *                      own columns, sent as one text parameter (pass null as
 *                      value).
 * The extension checks either against the column's type before any row is
 * written.  opts: schema, batchSize, pauseMs, targetBatchMs, maxReplicaLag
 * ('10s'), workers, resume, setNotNull, log (a function for NOTICE lines).
 * Needs exports.config = { transaction: false } in a migration.
 *
 * opts.detached: true queues a detached run instead (SELECT
 * safe_backfill_start(...)) on knex, which may be a trx (a migration's
 * default transaction): a background worker of the server runs it once
 * that transaction commits.  It logs "detached run N queued" and returns
 * the run's id (a string) at once.  Wait for it in a later migration with
 * ensureBackfillFinished.  It does not take setNotNull.
 */
async function safeBackfill(knex, table, column, value, opts = {}) {
  const target = `${opts.schema ? opts.schema + '.' : ''}${table}.${column}`;
  if (opts.detached && opts.setNotNull) {
    throw new TypeError('safeBackfill: { detached: true } does not take setNotNull: the ' +
                        'migration would not wait for the NOT NULL. Make the column NOT NULL ' +
                        'in a later migration, after ensureBackfillFinished, with safeSetNotNull');
  }
  if (opts.detached) {
    requirePostgres(knex, 'safeBackfill', target);
  } else {
    requireOutsideTransaction(knex, 'safeBackfill', 'safe_backfill', target);
  }
  const hasValue = value !== undefined && value !== null;
  const hasExpression = opts.expression !== undefined && opts.expression !== null;
  if (hasValue === hasExpression) {
    throw new TypeError('safeBackfill takes exactly one of a value (a constant other than ' +
                        'null) and opts.expression (SQL text or knex.raw())');
  }
  const batchSize = opts.batchSize === undefined ? 10000 : opts.batchSize;
  checkBatchSize(batchSize);
  const args = [['tbl', qualifiedTable(table, opts.schema), '::pg_catalog.regclass'],
                ['col', String(column), '::pg_catalog.name']];
  if (hasExpression) {
    args.push(['expression', expressionSql(opts.expression), '::pg_catalog.text']);
  } else {
    args.push(['value', value, '']);
  }
  batchArgs(args, { ...opts, dryRun: undefined }, batchSize);
  if (opts.setNotNull) args.push(['set_not_null', true, '::pg_catalog.bool']);
  if (opts.detached) return startDetached(knex, target, args, opts.log);
  await callProcedure(knex, 'safe_backfill', target, args, opts.log);
  return undefined;
}

/**
 * UPDATE the rows of table that match opts.where in batches of
 * opts.batchSize rows (default 10000, walked by primary key), each
 * committed on its own (CALL safe_update).
 *   set           what to set: an object { column: value }, each value a
 *                 constant (quoted by knex; a plain object as JSON) or
 *                 knex.raw() computed for each row from its own columns
 *                 ({ price_cents: knex.raw('(?? * 100)::int', ['price']) });
 *                 or SQL text (or knex.raw()), what follows SET.
 *   opts.where    the rows to update: SQL text or knex.raw(); unset: every row.
 * Both go as SQL text parameters; the extension parses them against the
 * table and refuses anything else before any row changes.  opts: schema,
 * where, batchSize, pauseMs, targetBatchMs, maxReplicaLag, workers, resume,
 * dryRun (count the matching rows, change nothing), log.  Needs
 * exports.config = { transaction: false } in a migration.  Not reversible
 * by itself: exports.down is yours.
 */
async function safeUpdate(knex, table, set, opts = {}) {
  const target = `${opts.schema ? opts.schema + '.' : ''}${table}`;
  requireOutsideTransaction(knex, 'safeUpdate', 'safe_update', target);
  const batchSize = opts.batchSize === undefined ? 10000 : opts.batchSize;
  checkBatchSize(batchSize);
  const args = [['tbl', qualifiedTable(table, opts.schema), '::pg_catalog.regclass'],
                ['set', setListSql(knex, set), '::pg_catalog.text']];
  if (opts.where !== undefined && opts.where !== null) {
    args.push(['"where"', expressionSql(opts.where, 'safeUpdate: opts.where'), '::pg_catalog.text']);
  }
  batchArgs(args, opts, batchSize);
  await callProcedure(knex, 'safe_update', target, args, opts.log);
}

/**
 * DELETE the rows of table that match where (SQL text or knex.raw();
 * required: TRUNCATE deletes every row) in batches, each committed on its
 * own (CALL safe_delete).  opts as for safeUpdate (but where).  Needs
 * exports.config = { transaction: false } in a migration.  Not reversible.
 */
async function safeDelete(knex, table, where, opts = {}) {
  const target = `${opts.schema ? opts.schema + '.' : ''}${table}`;
  if (where === undefined || where === null) {
    throw new TypeError(`safeDelete(${target}) needs a where (the rows to delete); to delete ` +
                        'every row use TRUNCATE');
  }
  requireOutsideTransaction(knex, 'safeDelete', 'safe_delete', target);
  const batchSize = opts.batchSize === undefined ? 10000 : opts.batchSize;
  checkBatchSize(batchSize);
  const args = [['tbl', qualifiedTable(table, opts.schema), '::pg_catalog.regclass'],
                ['"where"', expressionSql(where, 'safeDelete: where'), '::pg_catalog.text']];
  batchArgs(args, opts, batchSize);
  await callProcedure(knex, 'safe_delete', target, args, opts.log);
}

// SELECT safe_backfill_start(name => ?, ...) on knex (in its transaction
// when it is a trx); the run's id.
async function startDetached(knex, target, args, log) {
  const sql = `SELECT safe_backfill_start(${args.map(([name, , cast]) => `${name} => ?${cast || ''}`).join(', ')}) AS run`;
  const result = await knex.raw(sql, args.map(([, value]) => value));
  const run = result.rows[0].run;
  (log || console.log)(`safe_backfill: detached run ${run} queued for ${target}; a background ` +
                       "worker runs it once this migration's transaction commits. Wait for it " +
                       'in a later migration: ensureBackfillFinished');
  return run;
}

/**
 * Wait for the latest detached run of table.column (safeBackfill(...,
 * { detached: true }) in an earlier migration), found by the table's OID and
 * the column's number (safe_backfill_detached_run): CALL
 * safe_backfill_wait(id, timeout), which relays the run's progress and
 * throws the run's own error if it failed or was cancelled, or when
 * opts.timeout ('30 min'; unset: no limit) passes first.  No detached run of
 * the column is an error too: the migration that queues it was not applied
 * here.  opts: schema, timeout, log.  Needs exports.config = { transaction:
 * false } in a migration (the wait commits between looks).
 */
async function ensureBackfillFinished(knex, table, column, opts = {}) {
  const target = `${opts.schema ? opts.schema + '.' : ''}${table}.${column}`;
  requireOutsideTransaction(knex, 'ensureBackfillFinished', 'safe_backfill_wait', target);
  const found = await knex.raw(
    'SELECT safe_backfill_detached_run(?::pg_catalog.regclass, ?::pg_catalog.name) AS run',
    [qualifiedTable(table, opts.schema), String(column)]);
  const run = found.rows[0].run;
  if (run === null || run === undefined) {
    throw new Error(`ensureBackfillFinished(${target}): no detached run of this column was ` +
                    'found in safe_backfill_progress: run the migration with ' +
                    'safeBackfill(..., { detached: true }) first');
  }
  const args = [['job_id', run, '::pg_catalog.int8']];
  optional(args, 'timeout', opts.timeout, '::pg_catalog.interval');
  await callProcedure(knex, 'safe_backfill_wait', target, args, opts.log);
}

/**
 * Make table.column NOT NULL without a scan under ACCESS EXCLUSIVE (CALL
 * safe_set_not_null).  opts: schema, dropCheck (unset: drop the helper
 * CHECK only if the procedure added it), lockTimeout ('5s', per attempt at
 * an ACCESS EXCLUSIVE step), maxAttempts, log.  Needs exports.config =
 * { transaction: false } in a migration.  Reverse it in down() with
 * knex.schema.alterTable(t, (t) => t.setNullable(column)) (DROP NOT NULL).
 */
async function safeSetNotNull(knex, table, column, opts = {}) {
  const target = `${opts.schema ? opts.schema + '.' : ''}${table}.${column}`;
  requireOutsideTransaction(knex, 'safeSetNotNull', 'safe_set_not_null', target);
  const args = [['tbl', qualifiedTable(table, opts.schema), '::pg_catalog.regclass'],
                ['col', String(column), '::pg_catalog.name']];
  optional(args, 'drop_check', opts.dropCheck, '::pg_catalog.bool');
  optional(args, 'lock_timeout', opts.lockTimeout, '::pg_catalog.interval');
  optional(args, 'max_attempts', opts.maxAttempts, '::pg_catalog.int4');
  await callProcedure(knex, 'safe_set_not_null', target, args, opts.log);
}

module.exports = { safeBackfill, safeSetNotNull, ensureBackfillFinished, safeUpdate, safeDelete,
                   SafeBackfillTransactionError, expressionSql, setListSql, quoteIdent };
