import { useEffect, useState } from "preact/hooks";

import { ApiError, type Session, gql, money } from "./api";
import { Alert, ListFooter } from "./ui";

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
  const [rows, setRows] = useState<Product[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const load = async (after: string | null) => {
    setLoading(true);
    setError(null);
    try {
      const data = await gql<{ products: { nodes: Product[]; pageInfo: { hasNextPage: boolean; endCursor: string } } }>(
        session,
        `query($search: String, $after: String) { products(search: $search, first: 25, after: $after) {
           nodes { sku name price currency onHand reserved available } pageInfo { hasNextPage endCursor } } }`,
        { search: applied || undefined, after },
      );
      setRows((before) => (after ? [...before, ...data.products.nodes] : data.products.nodes));
      setNext(data.products.pageInfo.hasNextPage ? data.products.pageInfo.endCursor : null);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.message} (${e.code})` : "The catalog could not be loaded.");
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    load(null);
  }, [applied]);
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
      <ListFooter loading={loading} count={rows.length} noun="products" none="No product matches." more={next ? () => load(next) : null} />
    </section>
  );
}
