// change_user: currency 'eur' written 'EUR', with a note (constants quoted
// by knex; a quote, % and a backslash in one), where knex.raw().  The note
// marks the rows it changed (note is NULL before), which is what lets down
// set them back with a safeUpdate of its own.
const { safeUpdate } = require('knex-safe-backfill');

const batchSize = Number(process.env.SAFE_BACKFILL_CHANGE_BATCH_SIZE || 500);
const NOTE = "it's 100% \\ ok";

exports.config = { transaction: false };

exports.up = (knex) =>
  safeUpdate(knex, 'change_user', { currency: 'EUR', note: NOTE },
             { where: knex.raw('?? = ?', ['currency', 'eur']), batchSize });

exports.down = (knex) =>
  safeUpdate(knex, 'change_user', { currency: 'eur', note: null },
             { where: knex.raw('?? = ?', ['note', NOTE]), batchSize });
