import { useState } from "preact/hooks";

import { type Session, gql, money } from "./api";
import { Alert, type Connection, ListFooter, usePaged } from "./ui";

interface Product {
  sku: string;
  name: string;
  price: number;
  currency: string;
  onHand: number;
  reserved: number;
  available: number;
}

/** The catalog with its stock: on hand, held by orders, still to sell. */
export function Products({ session }: { session: Session }) {
  const [search, setSearch] = useState("");
  const [applied, setApplied] = useState("");
  const query = `query($search: String, $after: String) { products(search: $search, first: 25, after: $after) {
    nodes { sku name price currency onHand reserved available } pageInfo { hasNextPage endCursor } } }`;
  const { rows, loading, error, more } = usePaged(
    async (after) => (await gql<{ products: Connection<Product> }>(session, query, { search: applied || undefined, after })).products,
    "The catalog could not be loaded.",
    [applied],
  );
  return (
    <section aria-labelledby="products-title">
      <h1 id="products-title">Products</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(search.trim());
        }}
      >
        <div>
          <label for="p-search">Sku or name contains</label>
          <input id="p-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <button type="submit">Search</button>
      </form>
      <Alert message={error} />
      <div class="table" role="region" aria-label="Products" tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Sku</th>
              <th scope="col">Name</th>
              <th scope="col" class="num">Price</th>
              <th scope="col" class="num">On hand</th>
              <th scope="col" class="num">Held by orders</th>
              <th scope="col" class="num">Available</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((p) => (
              <tr>
                <td>{p.sku}</td>
                <td>{p.name}</td>
                <td class="num">{money(p.price, p.currency)}</td>
                <td class="num">{p.onHand}</td>
                <td class="num">{p.reserved}</td>
                <td class={`num ${p.available <= 0 ? "warn" : ""}`}>{p.available <= 0 ? "sold out" : p.available}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ListFooter loading={loading} count={rows.length} noun="products" none="No product matches." more={more} />
    </section>
  );
}
