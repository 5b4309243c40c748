/**
 * Invalidation driven by the data: a trigger on your table deletes the tagged cache entries in the same
 * transaction as any write to it, from any client (here psql's stand-in: a plain pg query).
 * Run: DATABASE_URL=postgres://... npx tsx examples/invalidate-on.ts
 */
import pg from 'pg';
import { PgStore } from 'cache-postgres';

const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'] });
const store = new PgStore({ pool });
await pool.query('CREATE TABLE IF NOT EXISTS example_inv_products (id int PRIMARY KEY, category text, price int NOT NULL)');
await pool.query(`INSERT INTO example_inv_products VALUES (1, 'books', 10), (2, 'games', 20)
  ON CONFLICT (id) DO UPDATE SET category = EXCLUDED.category, price = EXCLUDED.price`);

// Once, at deploy time (idempotent): which tags a row of the table stands for.
await store.ext.invalidateOn({ table: 'example_inv_products', tags: ['product:{id}', 'category:{category}', 'products'] });

const tagged = (id: number, category: string) => ({ absoluteExpirationRelative: '1h' as const, tags: [`product:${id}`, `category:${category}`] });
await store.ext.set('product:1', '{"price":10}', tagged(1, 'books'));
await store.ext.set('product:2', '{"price":20}', tagged(2, 'games'));
await store.ext.set('product-list', '[1,2]', { absoluteExpirationRelative: '1h', tags: ['products'] });

// Any writer: no cache call anywhere.
await pool.query('UPDATE example_inv_products SET price = 11 WHERE id = 1');
console.log('after UPDATE of product 1:', {
  'product:1': await store.ext.getString('product:1'),
  'product:2': await store.ext.getString('product:2'),
  'product-list': await store.ext.getString('product-list'),
});

console.log('check:', await store.ext.invalidations());
await store.ext.dropInvalidation({ table: 'example_inv_products' }); // an example tidies up
await pool.query('DROP TABLE example_inv_products');
await store.disconnect();
await pool.end();
