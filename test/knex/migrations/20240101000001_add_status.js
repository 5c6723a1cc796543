// New nullable columns: a catalog-only change, in the usual transaction.
exports.up = (knex) =>
  knex.schema.alterTable('large_user', (t) => {
    t.text('status');
    t.text('email_lower');
  });

exports.down = (knex) =>
  knex.schema.alterTable('large_user', (t) => {
    t.dropColumn('email_lower');
    t.dropColumn('status');
  });
