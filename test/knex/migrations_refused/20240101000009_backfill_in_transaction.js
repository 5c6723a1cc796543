// Wrong on purpose: without exports.config = { transaction: false } knex
// runs this migration in a transaction, where the procedure cannot commit
// its batches.  The helper must refuse before anything is sent.
const { safeBackfill } = require('knex-safe-backfill');

exports.up = (knex) => safeBackfill(knex, 'large_user', 'status', 'active', { batchSize: 1000 });

exports.down = async () => {};
