import { useEffect, useRef, useState } from "preact/hooks";

import { ApiError, type Connection, type Session, gql, isAdmin, money, subscribe, when, write } from "./api";
import { Alert } from "./ui";

interface Record {
  messageId: string;
  messageType: string;
  occurredAt: string;
  actor: string;
  causationId: string;
  depth: number | null;
}

interface Order {
  id: string;
  status: string;
  total: number;
  currency: string;
  placedAt: string;
  updatedAt: string;
  reason: string | null;
  reasonMessage: string | null;
  items: { productId: string; name: string; quantity: number; unitPrice: number; reservation: { state: string } }[];
  customer: { id: string; email: string; firstName: string; lastName: string } | null;
  payment: { id: string; status: string; amount: number; captured: number; refunded: number; reason: string | null } | null;
  auditTrail?: Record[] | null;
}

const QUERY = `query Order($id: UUID!, $trail: Boolean!) {
  order(id: $id) {
    id status total currency placedAt updatedAt reason reasonMessage
    items { productId name quantity unitPrice reservation { state } }
    customer { id email firstName lastName }
    payment { id status amount captured refunded reason }
    auditTrail @include(if: $trail) { messageId messageType occurredAt actor causationId depth }
  }
}`;

const LIVE = `subscription Live($id: UUID!) { orderUpdated(id: $id) { id status version } }`;

/** `OrderPlaced` → "Order placed". */
const words = (type: string) => type.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/^./, (c) => c.toUpperCase()).replace(/ ([A-Z])/g, (m) => m.toLowerCase());

/** An order with its payment, stock and story, live. */
export function OrderPage({ session, id }: { session: Session; id: string }) {
  const admin = isAdmin(session);
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [connection, setConnection] = useState<Connection>("connecting");
  const [outcome, setOutcome] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [amount, setAmount] = useState("");
  const alive = useRef(true);

  const load = async () => {
    try {
      const data = await gql<{ order: Order | null }>(session, QUERY, { id, trail: admin });
      if (!alive.current) return;
      if (!data.order) setError(new ApiError("NOT_FOUND", "There is no such order.", 404));
      else {
        setOrder(data.order);
        setError(null);
      }
    } catch (e) {
      if (alive.current) setError(e instanceof ApiError ? e : new ApiError("ERROR", "The order could not be loaded.", 0));
    }
  };

  useEffect(() => {
    alive.current = true;
    load();
    // Each change the projector commits is pushed: read the order afresh.
    const stop = subscribe(session, LIVE, { id }, () => load(), (state) => {
      setConnection(state);
      if (state === "live") load();
    });
    return () => {
      alive.current = false;
      stop();
    };
  }, [id]);

  /** The audit log records a little after the read model: look again a few times. */
  const followTrail = (before: number) => {
    if (!admin) return;
    [1000, 2000, 4000, 8000].forEach((delay) =>
      setTimeout(async () => {
        if (alive.current && (order?.auditTrail?.length ?? 0) <= before) await load();
      }, delay),
    );
  };

  const act = async (what: string, method: string, path: string, body?: unknown) => {
    setBusy(true);
    setOutcome(null);
    setFailure(null);
    const before = order?.auditTrail?.length ?? 0;
    try {
      const answer = await write(session, method, path, body);
      setOutcome(answer?.status ? `${what}: done (${answer.status}).` : `${what}: accepted; it will show here once settled.`);
      await load();
      followTrail(before);
    } catch (e) {
      setFailure(e instanceof ApiError ? `${what} refused: ${e.message} (${e.code})` : `${what} failed.`);
    } finally {
      setBusy(false);
    }
  };

  if (error) {
    const message =
      error.code === "FORBIDDEN" ? "This order belongs to another user: you cannot see it." : `${error.message} (${error.code})`;
    return (
      <section aria-labelledby="order-title">
        <h1 id="order-title">Order</h1>
        <p role="alert" class="error">
          {message}
        </p>
        <p>
          <a href="#/orders">Back to the orders</a>
        </p>
      </section>
    );
  }
  if (!order) return <p aria-live="polite">Loading the order…</p>;

  const p = order.payment;
  const refundable = p && (p.status === "CAPTURED" || p.status === "PARTIALLY_REFUNDED") ? p.captured - p.refunded : 0;
  const owner = order.customer?.id === session.userId;
  const trail = order.auditTrail ?? [];
  const causes = new Map(trail.map((r) => [r.messageId, r.messageType]));
  return (
    <section aria-labelledby="order-title">
      <p>
        <a href="#/orders">← Orders</a>
      </p>
      <h1 id="order-title">
        Order {order.id.slice(0, 8)}… <span class={`status s-${order.status.toLowerCase()}`}>{order.status}</span>
      </h1>
      <p class={`live ${connection}`} role="status">
        {connection === "live" ? "Live: changes show as they happen." : connection === "lost" ? "Connection lost: reconnecting…" : "Connecting…"}
      </p>
      {order.reason && (
        <p class="note">
          Cancelled: {order.reason}
          {order.reasonMessage ? ` (${order.reasonMessage})` : ""}
        </p>
      )}
      <div class="grid">
        <div class="card">
          <h2>Items</h2>
          <ul class="plain">
            {order.items.map((i) => (
              <li>
                {i.quantity} × {i.name} ({i.productId}) at {money(i.unitPrice, order.currency)} · stock {i.reservation.state}
              </li>
            ))}
          </ul>
          <p>
            Total <strong>{money(order.total, order.currency)}</strong> · placed {when(order.placedAt)}
          </p>
          <p>Customer: {order.customer ? `${order.customer.firstName} ${order.customer.lastName} <${order.customer.email}>`.trim() : "—"}</p>
        </div>
        <div class="card">
          <h2>Payment</h2>
          {p ? (
            <dl>
              <dt>Status</dt>
              <dd data-testid="payment-status">{p.status}</dd>
              <dt>Authorized</dt>
              <dd>{money(p.amount, order.currency)}</dd>
              <dt>Captured</dt>
              <dd>{money(p.captured, order.currency)}</dd>
              <dt>Refunded</dt>
              <dd data-testid="refunded">{money(p.refunded, order.currency)}</dd>
              {p.reason && (
                <>
                  <dt>Reason</dt>
                  <dd>{p.reason}</dd>
                </>
              )}
            </dl>
          ) : (
            <p>No payment yet.</p>
          )}
        </div>
      </div>
      <div class="card">
        <h2>Actions</h2>
        <div class="actions">
          {(owner || admin) && (order.status === "PENDING" || order.status === "CONFIRMED") && (
            <button type="button" disabled={busy} onClick={() => act("Cancel", "POST", `/api/v1/orders/${order.id}/cancel`)}>
              Cancel order
            </button>
          )}
          {admin && order.status === "CONFIRMED" && (
            <button type="button" disabled={busy} onClick={() => act("Ship", "PATCH", `/api/v1/orders/${order.id}/status`, { status: "SHIPPED" })}>
              Mark shipped
            </button>
          )}
          {admin && order.status === "SHIPPED" && (
            <button type="button" disabled={busy} onClick={() => act("Deliver", "PATCH", `/api/v1/orders/${order.id}/status`, { status: "DELIVERED" })}>
              Mark delivered
            </button>
          )}
        </div>
        {admin && p && refundable > 0 && (
          <form
            class="refund"
            onSubmit={(e) => {
              e.preventDefault();
              const minor = Math.round(Number(amount) * 100);
              act("Refund", "POST", `/api/v1/payments/${p.id}/refund`, { amount: minor });
            }}
          >
            <label for="refund-amount">Refund amount ({order.currency})</label>
            <input id="refund-amount" type="number" min="0.01" step="0.01" required value={amount} onInput={(e) => setAmount(e.currentTarget.value)} aria-describedby="refund-limit" />
            <span id="refund-limit" class="muted">
              up to {money(refundable, order.currency)} (captured less refunded)
            </span>
            <button type="submit" disabled={busy}>
              Refund
            </button>
          </form>
        )}
        <p role="status" class="ok">
          {outcome}
        </p>
        <Alert message={failure} />
      </div>
      <div class="card">
        <h2>Timeline</h2>
        {admin ? (
          <ol class="timeline" aria-label="What happened to this order, each step after its cause">
            {trail.map((r) => (
              <li class={`d${Math.min(r.depth ?? 0, 6)}`}>
                <time dateTime={r.occurredAt}>{when(r.occurredAt)}</time> <strong>{words(r.messageType)}</strong>
                <span class="muted">
                  {" "}
                  by {r.actor}
                  {causes.has(r.causationId) ? `, after ${words(causes.get(r.causationId) ?? "")}` : ""}
                </span>
              </li>
            ))}
          </ol>
        ) : (
          <p class="muted">The full story of an order across services is shown to admins.</p>
        )}
      </div>
    </section>
  );
}
