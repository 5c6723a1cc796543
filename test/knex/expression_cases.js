// knex-safe-backfill's expression text: a knex.raw() with bindings comes out
// with the values inlined by knex's PostgreSQL quoting, and the server
// evaluates it to what JavaScript expects (quotes, %, backslashes, ?
// placeholders inside values).  Prints TAP lines ("ok - ..." / "not ok - ...").
const knexLib = require('knex');
const { safeBackfill, safeSetNotNull, safeUpdate, safeDelete, expressionSql, setListSql } =
  require('knex-safe-backfill');

const knex = knexLib({ client: 'pg', connection: {}, pool: { min: 0, max: 2 } });

function ok(condition, description, details) {
  console.log(`${condition ? 'ok' : 'not ok'} - ${description}`);
  if (!condition && details) console.log(String(details).split('\n').map((l) => `#   ${l}`).join('\n'));
}

const CASES = [
  ['a column through ??', knex.raw('lower(??)', ['name']), 'x'],
  ['a string with a quote, % and a backslash', knex.raw('concat(name, ?)', [" it's 100% \\ ok?"]),
   "x it's 100% \\ ok?"],
  ['a number', knex.raw('length(name) + ?', [41]), '42'],
  ['SQL text as a string', "name || '%'", 'x%'],
];

async function main() {
  for (const [description, expression, expected] of CASES) {
    const sql = expressionSql(expression);
    try {
      const result = await knex.raw(`SELECT (${sql.replace(/\?/g, '\\?')})::text AS v FROM (VALUES ('x')) AS t(name)`);
      const got = result.rows[0].v;
      ok(got === expected, `knex: expression ${description}: ${sql} gives ${JSON.stringify(expected)}`,
         `got ${JSON.stringify(got)}`);
    } catch (error) {
      ok(false, `knex: expression ${description} runs`, error.message);
    }
  }
  // safeUpdate's set list from an object: constants (a quote, %, a
  // backslash and a ?; null; an object for jsonb) and knex.raw(), evaluated
  // by the server as an UPDATE of a one-row table would.
  const set = { name: "it's 100% \\ ok?", vip: null, meta: { a: [1, "it's"] },
                n: knex.raw('?? * 2 + ?', ['n', 1]) };
  try {
    const setList = setListSql(knex, set);
    const got = await knex.transaction(async (trx) => {
      await trx.raw('CREATE TEMPORARY TABLE set_case (name text, vip boolean, meta jsonb, n integer) ON COMMIT DROP');
      await trx.raw("INSERT INTO set_case VALUES ('x', true, NULL, 20)");
      await trx.raw(`UPDATE set_case SET ${setList.replace(/\?/g, '\\?')}`);
      return (await trx.raw('SELECT name, vip, meta::text AS meta, n FROM set_case')).rows[0];
    });
    const expected = { name: "it's 100% \\ ok?", vip: null, meta: '{"a": [1, "it\'s"]}', n: 41 };
    ok(JSON.stringify(got) === JSON.stringify(expected),
       `knex: a set object (a quote, %, a backslash and a ?; null; an object for jsonb; knex.raw()) compiles to ${setList}`,
       `got ${JSON.stringify(got)}`);
  } catch (error) {
    ok(false, 'knex: a set object compiles and runs', error.message);
  }
  await safeDelete(knex, 'change_user', null).then(
    () => ok(false, 'knex: safeDelete without where is refused'),
    (error) => ok(/use TRUNCATE/.test(error.message),
                  'knex: safeDelete without where is refused before anything is sent', error.message));
  await knex.transaction(async (trx) => {
    await safeUpdate(trx, 'change_user', { currency: 'EUR' }).then(
      () => ok(false, 'knex: safeUpdate refuses a transaction'),
      (error) => ok(error.name === 'SafeBackfillTransactionError' &&
                    /^safeUpdate\(change_user\) cannot run in a transaction: .*exports\.config = \{ transaction: false \}/.test(error.message),
                    'knex: safeUpdate given a trx refuses with SafeBackfillTransactionError, ' +
                    'saying to set transaction: false', error.message));
  });

  // Refused before anything is sent: value and expression, a transaction.
  await safeBackfill(knex, 'large_user', 'status', 'x', { expression: 'lower(name)' }).then(
    () => ok(false, 'knex: value and expression together are refused'),
    (error) => ok(/exactly one of a value/.test(error.message),
                  'knex: value and expression together are refused before anything is sent', error.message));
  await knex.transaction(async (trx) => {
    await safeSetNotNull(trx, 'large_user', 'status').then(
      () => ok(false, 'knex: safeSetNotNull refuses a transaction'),
      (error) => ok(error.name === 'SafeBackfillTransactionError' &&
                    /cannot run in a transaction: .*exports\.config = \{ transaction: false \}/.test(error.message),
                    'knex: safeSetNotNull given a trx refuses with SafeBackfillTransactionError, ' +
                    'saying to set transaction: false', error.message));
  });
}

main().catch((error) => ok(false, 'knex: expression_cases.js ran to its end', error.stack))
  .finally(() => knex.destroy());
