import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { type Session, isAdmin, loadSession, logout, saveSession } from "./api";
import { Audit } from "./audit";
import { BusPage } from "./bus";
import { Login } from "./login";
import { OrderPage } from "./order";
import { Products } from "./products";
import { Orders } from "./orders";
import { UserPage, Users } from "./users";
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
    const titles: Record<string, string> = { orders: "Orders", users: "Users", audit: "Audit log", bus: "Bus", me: "My profile", products: "Products" };
    const title = session ? (route[1] ? `${titles[route[0]] ?? "Orders"}: ${route[1].slice(0, 8)}` : titles[route[0]] ?? "Orders") : "Sign in";
    document.title = `${title} · orderflow console`;
  }, [route.join("/"), session]);
  if (!session) {
    return (
      <main id="main">
        <Login onSignedIn={signIn} />
      </main>
    );
  }
  const admin = isAdmin(session);
  let page;
  if (route[0] === "orders" && route[1]) page = <OrderPage session={session} id={route[1]} />;
  else if (route[0] === "users" && route[1]) page = <UserPage session={session} id={route[1]} />;
  else if (route[0] === "users" && admin) page = <Users session={session} />;
  else if (route[0] === "audit" && admin) page = <Audit session={session} />;
  else if (route[0] === "bus" && admin) page = <BusPage session={session} />;
  else if (route[0] === "me") page = <UserPage session={session} id={session.userId} />;
  else if (route[0] === "products") page = <Products session={session} />;
  else page = <Orders session={session} />;
  const link = (to: string, label: string) => (
    <a href={`#/${to}`} aria-current={route[0] === to && !route[1] ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <span class="brand">orderflow</span>
        <nav aria-label="Main">
          {link("orders", admin ? "Orders" : "My orders")}
          {link("products", "Products")}
          {admin ? link("users", "Users") : link("me", "My profile")}
          {admin && link("audit", "Audit log")}
          {admin && link("bus", "Bus")}
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
