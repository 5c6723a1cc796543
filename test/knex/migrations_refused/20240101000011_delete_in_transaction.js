// Wrong on purpose (as 09): safeDelete in knex's migration transaction.
const { safeDelete } = require('knex-safe-backfill');

exports.up = (knex) => safeDelete(knex, 'change_user', knex.raw('?? = ?', ['kind', 'spam']),
                                  { batchSize: 500 });

exports.down = async () => {};
