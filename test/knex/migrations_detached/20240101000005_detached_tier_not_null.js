// A later deploy: wait for the detached backfill, then NOT NULL.
const { ensureBackfillFinished, safeSetNotNull } = require('knex-safe-backfill');

exports.config = { transaction: false };

exports.up = async (knex) => {
  await ensureBackfillFinished(knex, 'detached_user', 'tier', { timeout: '10 min' });
  await safeSetNotNull(knex, 'detached_user', 'tier');
};

exports.down = (knex) => knex.schema.alterTable('detached_user', (t) => t.setNullable('tier'));
