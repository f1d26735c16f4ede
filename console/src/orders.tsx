import { useState } from "preact/hooks";

import { type Session, gql, isAdmin, money, when } from "./api";
import { Alert, type Connection, ListFooter, usePaged } from "./ui";

export const STATUSES = ["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];

interface Row {
  id: string;
  status: string;
  total: number;
  currency: string;
  placedAt: string;
  customer: { email: string } | null;
  payment: { status: string } | null;
}

interface Page {
  orders: Connection<Row>;
}

const QUERY = `query Orders($filter: OrderFilter, $after: String) {
  orders(filter: $filter, first: 20, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id status total currency placedAt customer { email } payment { status } }
  }
}`;

interface Filter {
  status: string;
  customerId: string;
  from: string;
  to: string;
  minTotal: string;
  maxTotal: string;
}

const EMPTY: Filter = { status: "", customerId: "", from: "", to: "", minTotal: "", maxTotal: "" };

/** A filter as the GraphQL `OrderFilter` (amounts typed in major units). */
function variables(f: Filter) {
  const minor = (v: string) => (v.trim() === "" ? undefined : Math.round(Number(v) * 100));
  return {
    status: f.status || undefined,
    customerId: f.customerId.trim() || undefined,
    placedFrom: f.from ? new Date(`${f.from}T00:00:00Z`).toISOString() : undefined,
    placedTo: f.to ? new Date(`${f.to}T23:59:59Z`).toISOString() : undefined,
    minTotal: minor(f.minTotal),
    maxTotal: minor(f.maxTotal),
  };
}

/** Orders, newest first: every order for staff, one's own for a user. */
export function Orders({ session }: { session: Session }) {
  const [filter, setFilter] = useState<Filter>(EMPTY);
  const [applied, setApplied] = useState<Filter>(EMPTY);
  const { rows, loading, error, more } = usePaged(
    async (after) => (await gql<Page>(session, QUERY, { filter: variables(applied), after })).orders,
    "The orders could not be loaded.",
    [applied],
  );

  const field = (name: keyof Filter) => ({
    value: filter[name],
    onInput: (e: Event) => setFilter({ ...filter, [name]: (e.currentTarget as HTMLInputElement).value }),
  });
  return (
    <section aria-labelledby="orders-title">
      <h1 id="orders-title">{isAdmin(session) ? "Orders" : "My orders"}</h1>
      <form
        class="filters"
        aria-label="Filter orders"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter);
        }}
      >
        <div>
          <label for="f-status">Status</label>
          <select id="f-status" {...field("status")}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </div>
        {isAdmin(session) && (
          <div>
            <label for="f-customer">Customer id</label>
            <input id="f-customer" {...field("customerId")} />
          </div>
        )}
        <div>
          <label for="f-from">Placed from</label>
          <input id="f-from" type="date" {...field("from")} />
        </div>
        <div>
          <label for="f-to">Placed to</label>
          <input id="f-to" type="date" {...field("to")} />
        </div>
        <div>
          <label for="f-min">Total at least</label>
          <input id="f-min" type="number" min="0" step="0.01" {...field("minTotal")} />
        </div>
        <div>
          <label for="f-max">Total at most</label>
          <input id="f-max" type="number" min="0" step="0.01" {...field("maxTotal")} />
        </div>
        <button type="submit">Filter</button>
      </form>
      <Alert message={error} />
      <div class="table" role="region" aria-label="Orders" tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Order</th>
              <th scope="col">Status</th>
              <th scope="col">Payment</th>
              <th scope="col" class="num">Total</th>
              <th scope="col">Placed</th>
              {isAdmin(session) && <th scope="col">Customer</th>}
            </tr>
          </thead>
          <tbody>
            {rows.map((o) => (
              <tr>
                <td>
                  <a href={`#/orders/${o.id}`}>{o.id.slice(0, 8)}…</a>
                </td>
                <td>
                  <span class={`status s-${o.status.toLowerCase()}`}>{o.status}</span>
                </td>
                <td>{o.payment?.status ?? "—"}</td>
                <td class="num">{money(o.total, o.currency)}</td>
                <td>{when(o.placedAt)}</td>
                {isAdmin(session) && <td>{o.customer?.email || "(erased)"}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ListFooter loading={loading} count={rows.length} noun="orders" none="No orders match." more={more} />
    </section>
  );
}
