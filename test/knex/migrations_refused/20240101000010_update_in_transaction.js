// Wrong on purpose (as 09): safeUpdate in knex's migration transaction.
const { safeUpdate } = require('knex-safe-backfill');

exports.up = (knex) => safeUpdate(knex, 'change_user', { currency: 'EUR' },
                                  { where: "currency = 'eur'", batchSize: 500 });

exports.down = async () => {};
