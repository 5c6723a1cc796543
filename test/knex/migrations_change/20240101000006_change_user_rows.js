// change_user: price_cents recomputed where it is wrong (knex.raw() as the
// value, SQL text as where), spam rows deleted (knex.raw() as where).  Each
// batch commits on its own: no transaction around this migration.  Not
// reversible: down says so and changes nothing.
const { safeUpdate, safeDelete } = require('knex-safe-backfill');

const batchSize = Number(process.env.SAFE_BACKFILL_CHANGE_BATCH_SIZE || 500);

exports.config = { transaction: false };

exports.up = async (knex) => {
  await safeUpdate(knex, 'change_user', { price_cents: knex.raw('(?? * 100)::int', ['price']) },
                   { where: 'price_cents IS DISTINCT FROM (price * 100)::int', batchSize });
  await safeDelete(knex, 'change_user', knex.raw('?? = ? AND ?? > ?', ['kind', 'spam', 'price', 10]),
                   { batchSize });
};

exports.down = async () => {
  console.log('20240101000006_change_user_rows: not reversed: the rows it deleted are gone ' +
              'and the price_cents it recomputed stay');
};
