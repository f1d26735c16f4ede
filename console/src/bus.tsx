import { useEffect, useState } from "preact/hooks";

import { ApiError, type Session, read, when } from "./api";
import { Alert } from "./ui";

interface Lag {
  reader: string;
  topic: string;
  partition: number;
  messages: number;
  seconds: number;
}

interface Bus {
  checked_at: string;
  processes: {
    name: string;
    ready: boolean;
    detail: string | null;
    outbox_backlog: number | null;
    outbox_oldest_seconds: number | null;
    outbox_parked: number | null;
  }[];
  groups: Lag[];
  projections: Lag[];
  dead_letters: { topic: string; messages: number }[];
}

/** Lag summed per reader: the worst partition's age, all partitions' messages. */
function perReader(lags: Lag[]) {
  const by = new Map<string, { messages: number; seconds: number; partitions: number }>();
  for (const l of lags) {
    const seen = by.get(l.reader) ?? { messages: 0, seconds: 0, partitions: 0 };
    by.set(l.reader, { messages: seen.messages + l.messages, seconds: Math.max(seen.seconds, l.seconds), partitions: seen.partitions + 1 });
  }
  return [...by.entries()].sort(([a], [b]) => a.localeCompare(b));
}

function LagTable({ title, lags }: { title: string; lags: Lag[] }) {
  return (
    <div class="card">
      <h2>{title}</h2>
      <div class="table" role="region" aria-label={title} tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">Reader</th>
              <th scope="col" class="num">Partitions</th>
              <th scope="col" class="num">Behind (messages)</th>
              <th scope="col" class="num">Oldest unread</th>
            </tr>
          </thead>
          <tbody>
            {perReader(lags).map(([reader, l]) => (
              <tr>
                <td>{reader}</td>
                <td class="num">{l.partitions}</td>
                <td class={`num ${l.messages > 0 ? "warn" : ""}`}>{l.messages}</td>
                <td class="num">{l.seconds > 0 ? `${l.seconds.toFixed(1)} s` : "caught up"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/** The bus: readiness, outboxes, lag, dead letters; refreshed every 10 s. */
export function BusPage({ session }: { session: Session }) {
  const [bus, setBus] = useState<Bus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = async () => {
    try {
      setBus(await read(session, "/api/v1/admin/bus"));
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.message} (${e.code})` : "The bus could not be read.");
    }
  };
  useEffect(() => {
    load();
    const timer = setInterval(load, 10_000);
    return () => clearInterval(timer);
  }, []);
  return (
    <section aria-labelledby="bus-title">
      <h1 id="bus-title">The bus</h1>
      <Alert message={error} />
      {!bus ? (
        <p aria-live="polite">Reading the bus…</p>
      ) : (
        <>
          <p class="muted" aria-live="polite">
            Checked {when(bus.checked_at)}.
          </p>
          <div class="card">
            <h2>Processes</h2>
            {bus.processes.length === 0 ? (
              <p class="muted">No process is configured to be probed (monitor.processes).</p>
            ) : (
              <div class="table" role="region" aria-label="Processes" tabIndex={0}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Process</th>
                      <th scope="col">Ready</th>
                      <th scope="col" class="num">Outbox backlog</th>
                      <th scope="col" class="num">Oldest unpublished</th>
                      <th scope="col" class="num">Parked</th>
                    </tr>
                  </thead>
                  <tbody>
                    {bus.processes.map((p) => (
                      <tr>
                        <td>{p.name}</td>
                        <td class={p.ready ? "okcell" : "error"}>{p.ready ? "ready" : `NOT READY${p.detail ? `: ${p.detail}` : ""}`}</td>
                        <td class="num">{p.outbox_backlog ?? "—"}</td>
                        <td class="num">{p.outbox_oldest_seconds != null ? `${p.outbox_oldest_seconds.toFixed(1)} s` : "—"}</td>
                        <td class={`num ${(p.outbox_parked ?? 0) > 0 ? "warn" : ""}`}>{p.outbox_parked ?? "—"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
          <LagTable title="Consumer groups" lags={bus.groups} />
          <LagTable title="Projections" lags={bus.projections} />
          <div class="card">
            <h2>Dead letters</h2>
            <ul class="plain">
              {bus.dead_letters.map((d) => (
                <li class={d.messages > 0 ? "warn" : ""}>
                  {d.topic}: {d.messages} {d.messages === 1 ? "message" : "messages"}
                </li>
              ))}
            </ul>
          </div>
        </>
      )}
    </section>
  );
}
