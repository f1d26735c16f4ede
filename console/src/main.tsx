import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { type Session, isAdmin, loadSession, logout, saveSession } from "./api";
import { Login } from "./login";
import { OrderPage } from "./order";
import { Orders } from "./orders";
import "./style.css";

/** The page the location's hash names: `#/orders`, `#/orders/<id>`. */
function useRoute(): string[] {
  const parse = () => window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const changed = () => setRoute(parse());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function App() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const route = useRoute();
  const signIn = (s: Session) => {
    saveSession(s);
    setSession(s);
    if (!window.location.hash || window.location.hash === "#/login") window.location.hash = "#/orders";
  };
  const signOut = async () => {
    if (session) await logout(session);
    saveSession(null);
    setSession(null);
    window.location.hash = "#/login";
  };
  useEffect(() => {
    const title = route[0] === "orders" && route[1] ? "Order" : route[0] === "orders" ? "Orders" : "Sign in";
    document.title = `${title} · orderflow console`;
  }, [route.join("/")]);
  if (!session) {
    return (
      <main id="main">
        <Login onSignedIn={signIn} />
      </main>
    );
  }
  let page;
  if (route[0] === "orders" && route[1]) page = <OrderPage session={session} id={route[1]} />;
  else page = <Orders session={session} />;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <span class="brand">orderflow</span>
        <nav aria-label="Main">
          <a href="#/orders" aria-current={route[0] !== "orders" || route[1] ? undefined : "page"}>
            {isAdmin(session) ? "Orders" : "My orders"}
          </a>
        </nav>
        <span class="who">
          {session.email} {isAdmin(session) ? "(admin)" : ""}
        </span>
        <button type="button" class="quiet" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
