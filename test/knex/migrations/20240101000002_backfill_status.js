// Each batch commits on its own: no transaction around this migration.
const { safeBackfill } = require('knex-safe-backfill');

const batchSize = Number(process.env.SAFE_BACKFILL_BATCH_SIZE || 10000);

exports.config = { transaction: false };

exports.up = async (knex) => {
  await safeBackfill(knex, 'large_user', 'status', 'active', { batchSize });
  await safeBackfill(knex, 'large_user', 'email_lower', null,
                     { expression: knex.raw('lower(??)', ['email']), batchSize });
};

// The values stay: which rows were NULL before is not known; rolling back
// the migration that added the columns drops them.
exports.down = async () => {};
