// NOT NULL through a validated CHECK, without a scan under ACCESS EXCLUSIVE;
// rolled back by DROP NOT NULL (catalog only).
const { safeSetNotNull } = require('knex-safe-backfill');

exports.config = { transaction: false };

exports.up = async (knex) => {
  await safeSetNotNull(knex, 'large_user', 'status');
  await safeSetNotNull(knex, 'large_user', 'email_lower');
};

exports.down = (knex) =>
  knex.schema.alterTable('large_user', (t) => {
    t.setNullable('email_lower');
    t.setNullable('status');
  });
