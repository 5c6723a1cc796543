// The knex project of test/knex/run_test.sh.  node-pg takes the database
// from libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
// KNEX_MIGRATIONS_DIR / KNEX_MIGRATIONS_TABLE choose another set of
// migrations (the refusal test's), with a bookkeeping table of its own.
module.exports = {
  client: 'pg',
  connection: {},
  migrations: {
    directory: process.env.KNEX_MIGRATIONS_DIR || './migrations',
    tableName: process.env.KNEX_MIGRATIONS_TABLE || 'knex_migrations',
  },
};
