// The console's only way to the system: the ingress's REST API (login,
// writes) and GraphQL (reads, live order status over WebSocket), on the
// origin that served the page.

export interface Session {
  token: string;
  refresh?: string;
  userId: string;
  email: string;
  roles: string[];
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const KEY = "orderflow.session";

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw) as Session;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null) {
  if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
  else sessionStorage.removeItem(KEY);
}

export const isAdmin = (s: Session | null) => !!s && s.roles.includes("admin");

async function call(method: string, path: string, token: string | null, body?: unknown, wait?: number) {
  const headers: Record<string, string> = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (wait) headers.prefer = `wait=${wait}`;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("CONNECTION_LOST", "The system cannot be reached. Check the connection and try again.", 0);
  }
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText, response.status);
  }
  return { status: response.status, body: json };
}

/** Logs in with the REST API; the roles come from the read model (`/users/me`). */
export async function login(email: string, password: string): Promise<Session> {
  const { body } = await call("POST", "/api/v1/auth/login", null, { email, password });
  const me = await call("GET", "/api/v1/users/me", body.access_token);
  return { token: body.access_token, refresh: body.refresh_token, userId: me.body.id, email: me.body.email, roles: me.body.roles };
}

export async function logout(session: Session) {
  try {
    await call("POST", "/api/v1/auth/logout", session.token, session.refresh ? { refresh_token: session.refresh } : {});
  } catch {
    // Logged out here whatever the server said.
  }
}

/**
 * A call as `session`. An expired access token is renewed once with the
 * refresh token (`POST /api/v1/auth/refresh`; the session is updated in
 * place and kept), then the call is sent again.
 */
async function authed(session: Session, method: string, path: string, body?: unknown, wait?: number) {
  try {
    return await call(method, path, session.token, body, wait);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401 || !session.refresh) throw e;
    let renewed;
    try {
      renewed = (await call("POST", "/api/v1/auth/refresh", null, { refresh_token: session.refresh })).body;
    } catch {
      throw new ApiError("SESSION_ENDED", "Your session has ended: sign out and sign in again.", 401);
    }
    session.token = renewed.access_token;
    if (renewed.refresh_token) session.refresh = renewed.refresh_token;
    saveSession(session);
    return await call(method, path, session.token, body, wait);
  }
}

/** A write through REST, waiting up to 10 s for its outcome. */
export async function write(session: Session, method: string, path: string, body?: unknown) {
  return (await authed(session, method, path, body, 10)).body;
}

/** A REST read. */
export async function read(session: Session, path: string) {
  return (await authed(session, "GET", path)).body;
}

/** A GraphQL query: its data, or the first error (with the REST code). */
export async function gql<T>(session: Session | null, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const payload = { query, variables };
  const { body } = session ? await authed(session, "POST", "/graphql", payload) : await call("POST", "/graphql", null, payload);
  if (body.errors?.length) {
    const e = body.errors[0];
    throw new ApiError(e.extensions?.code ?? "GRAPHQL_ERROR", e.message, e.extensions?.status ?? 400);
  }
  return body.data as T;
}

export type Connection = "connecting" | "live" | "lost";

/**
 * A GraphQL subscription over WebSocket (graphql-transport-ws). Reconnects
 * after a lost connection (telling `onState`), and calls `onData` with each
 * pushed result. Returns how to stop it.
 */
export function subscribe(
  session: Session,
  query: string,
  variables: Record<string, unknown>,
  onData: (data: unknown) => void,
  onState: (state: Connection) => void,
): () => void {
  let socket: WebSocket | null = null;
  let stopped = false;
  let retry = 500;
  const open = () => {
    onState("connecting");
    const url = new URL("/graphql", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = () => socket?.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${session.token}` } }));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data as string);
      if (message.type === "connection_ack") {
        retry = 500;
        onState("live");
        socket?.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
      } else if (message.type === "next") {
        onData(message.payload?.data);
      } else if (message.type === "ping") {
        socket?.send(JSON.stringify({ type: "pong" }));
      }
    };
    socket.onclose = () => {
      if (stopped) return;
      onState("lost");
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 10_000);
    };
  };
  open();
  return () => {
    stopped = true;
    socket?.close();
  };
}

/** Minor units as money: 1250 EUR → "€12.50". */
export function money(minor: number | null | undefined, currency: string) {
  if (minor === null || minor === undefined) return "—";
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).format(minor / 100);
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency}`;
  }
}

export const when = (iso: string) => new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
