// In the migration's transaction (knex's default): the column is added and
// its backfill queued as a detached run on the trx, which a background
// worker runs once the transaction commits; the migration returns at once.
const { safeBackfill } = require('knex-safe-backfill');

exports.up = async (knex) => {
  await knex.schema.alterTable('detached_user', (t) => t.text('tier'));
  await safeBackfill(knex, 'detached_user', 'tier', 'basic', {
    detached: true,
    batchSize: Number(process.env.SAFE_BACKFILL_BATCH_SIZE || 10000),
  });
};

exports.down = (knex) => knex.schema.alterTable('detached_user', (t) => t.dropColumn('tier'));
