import { useEffect, useState } from "preact/hooks";

import { ApiError, type Session, gql, isAdmin, money, when, write } from "./api";
import { Alert, type Connection, ListFooter, usePaged } from "./ui";

interface User {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: string[];
  active: boolean;
  registeredAt: string;
  erasedAt: string | null;
}

const FIELDS = "id email firstName lastName roles active registeredAt erasedAt";

const failed = (e: unknown, what: string) => (e instanceof ApiError ? `${e.message} (${e.code})` : `${what} failed.`);

/** Every user, searched by email or name (admins). */
export function Users({ session }: { session: Session }) {
  const [search, setSearch] = useState("");
  const [applied, setApplied] = useState("");
  const query = `query($search: String, $after: String) { users(filter: {search: $search}, first: 20, after: $after) {
    nodes { ${FIELDS} } pageInfo { hasNextPage endCursor } } }`;
  const { rows, loading, error, more } = usePaged(
    async (after) => (await gql<{ users: Connection<User> }>(session, query, { search: applied || undefined, after })).users,
    "Loading the users failed.",
    [applied],
  );
  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(search.trim());
        }}
      >
        <div>
          <label for="u-search">Email or name contains</label>
          <input id="u-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <button type="submit">Search</button>
      </form>
      <Alert message={error} />
      <div class="table" role="region" aria-label="Users" tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Name</th>
              <th scope="col">Roles</th>
              <th scope="col">State</th>
              <th scope="col">Registered</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((u) => (
              <tr>
                <td>
                  <a href={`#/users/${u.id}`}>{u.email || "(erased)"}</a>
                </td>
                <td>{`${u.firstName} ${u.lastName}`.trim() || "—"}</td>
                <td>{u.roles.join(", ")}</td>
                <td>{u.erasedAt ? "erased" : u.active ? "active" : "deactivated"}</td>
                <td>{when(u.registeredAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ListFooter loading={loading} count={rows.length} noun="users" none="No user matches." more={more} />
    </section>
  );
}

interface Detail extends User {
  orders: { id: string; status: string; total: number; currency: string; placedAt: string }[];
}

/** A user with their newest orders; an admin may deactivate or erase them. */
export function UserPage({ session, id }: { session: Session; id: string }) {
  const [user, setUser] = useState<Detail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [confirmErase, setConfirmErase] = useState(false);
  const load = async () => {
    try {
      const data = await gql<{ user: Detail | null }>(
        session,
        `query($id: UUID!) { user(id: $id) { ${FIELDS} orders(first: 10) { id status total currency placedAt } } }`,
        { id },
      );
      if (data.user) setUser(data.user);
      else setError("There is no such user.");
    } catch (e) {
      setError(e instanceof ApiError && e.code === "FORBIDDEN" ? "This is another user: you cannot see them." : failed(e, "Loading the user"));
    }
  };
  useEffect(() => {
    load();
  }, [id]);
  const act = async (what: string, method: string, path: string, body?: unknown) => {
    setOutcome(null);
    setFailure(null);
    try {
      await write(session, method, path, body);
      setOutcome(`${what}: done.`);
      await load();
    } catch (e) {
      setFailure(`${what} refused: ${failed(e, what)}`);
    }
  };
  if (error)
    return (
      <section aria-labelledby="user-title">
        <h1 id="user-title">User</h1>
        <p role="alert" class="error">
          {error}
        </p>
      </section>
    );
  if (!user) return <p aria-live="polite">Loading the user…</p>;
  const admin = isAdmin(session);
  return (
    <section aria-labelledby="user-title">
      {admin && (
        <p>
          <a href="#/users">← Users</a>
        </p>
      )}
      <h1 id="user-title">{user.erasedAt ? "Erased user" : `${user.firstName} ${user.lastName}`}</h1>
      <div class="card">
        <dl>
          <dt>Email</dt>
          <dd>{user.email || "—"}</dd>
          <dt>Roles</dt>
          <dd>{user.roles.join(", ")}</dd>
          <dt>State</dt>
          <dd data-testid="user-state">{user.erasedAt ? `erased ${when(user.erasedAt)}` : user.active ? "active" : "deactivated"}</dd>
          <dt>Registered</dt>
          <dd>{when(user.registeredAt)}</dd>
          <dt>Id</dt>
          <dd>
            <code>{user.id}</code>
          </dd>
        </dl>
      </div>
      {admin && !user.erasedAt && (
        <div class="card">
          <h2>Actions</h2>
          <div class="actions">
            {user.active && (
              <button type="button" onClick={() => act("Deactivate", "DELETE", `/api/v1/users/${user.id}`)}>
                Deactivate
              </button>
            )}
            {!confirmErase ? (
              <button type="button" class="danger" onClick={() => setConfirmErase(true)}>
                Erase personal data…
              </button>
            ) : (
              <>
                <span role="alert" class="error">
                  Erasing cannot be undone: the email, names and addresses go; orders and payments stay.
                </span>
                <button type="button" class="danger" onClick={() => act("Erase", "POST", `/api/v1/users/${user.id}/erase`, {})}>
                  Erase for good
                </button>
                <button type="button" class="quiet" onClick={() => setConfirmErase(false)}>
                  Keep
                </button>
              </>
            )}
          </div>
          <p role="status" class="ok">
            {outcome}
          </p>
          <Alert message={failure} />
        </div>
      )}
      <div class="card">
        <h2>Newest orders</h2>
        {user.orders.length === 0 ? (
          <p class="muted">No orders.</p>
        ) : (
          <ul class="plain">
            {user.orders.map((o) => (
              <li>
                <a href={`#/orders/${o.id}`}>{o.id.slice(0, 8)}…</a> {o.status} · {money(o.total, o.currency)} · {when(o.placedAt)}
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
