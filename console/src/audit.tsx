import { useState } from "preact/hooks";

import { ApiError, type Session, read, when } from "./api";
import { Alert } from "./ui";

interface Record {
  message_id: string;
  message_type: string;
  entity: string | null;
  actor: string;
  correlation_id: string;
  occurred_at: string;
}

interface Report {
  intact: boolean;
  mode: string;
  records: number;
  recomputed: number;
  chains: { topic: string; partition: number; records: number; intact: boolean }[];
  first_break: unknown;
}

const failed = (e: unknown) => (e instanceof ApiError ? `${e.message} (${e.code})` : "The audit log cannot be reached.");

/** The audit log: search it, and verify its hash chains (admins). */
export function Audit({ session }: { session: Session }) {
  const [filter, setFilter] = useState({ actor: "", entity: "", type: "", correlation_id: "" });
  const [records, setRecords] = useState<Record[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const search = async (cursor: string | null) => {
    setBusy(true);
    setError(null);
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v.trim()) query.set(k, v.trim());
    query.set("page_size", "25");
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await read(session, `/api/v1/audit?${query}`);
      setRecords((before) => (cursor && before ? [...before, ...page.items] : page.items));
      setNext(page.next_cursor);
    } catch (e) {
      setError(failed(e));
    } finally {
      setBusy(false);
    }
  };
  const verify = async () => {
    setBusy(true);
    setError(null);
    try {
      setReport(await read(session, "/api/v1/audit/verify"));
    } catch (e) {
      setError(failed(e));
    } finally {
      setBusy(false);
    }
  };
  const field = (name: keyof typeof filter, label: string) => (
    <div>
      <label for={`a-${name}`}>{label}</label>
      <input id={`a-${name}`} value={filter[name]} onInput={(e) => setFilter({ ...filter, [name]: e.currentTarget.value })} />
    </div>
  );
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <div class="card">
        <h2>Integrity</h2>
        <button type="button" disabled={busy} onClick={verify}>
          Verify the hash chains
        </button>
        {report && (
          <p role="status" class={report.intact ? "ok" : "error"}>
            {report.intact
              ? `Intact: ${report.records} records in ${report.chains.length} chains (${report.mode} check, ${report.recomputed} recomputed).`
              : `BROKEN: ${JSON.stringify(report.first_break)}`}
          </p>
        )}
      </div>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          search(null);
        }}
      >
        {field("actor", "Actor (user id)")}
        {field("entity", "Entity (order, user… id)")}
        {field("type", "Message type")}
        {field("correlation_id", "Correlation id")}
        <button type="submit" disabled={busy}>
          Search
        </button>
      </form>
      <Alert message={error} />
      {records && (
        <div class="table" role="region" aria-label="Audit records" tabIndex={0}>
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Type</th>
                <th scope="col">Entity</th>
                <th scope="col">Actor</th>
                <th scope="col">Request</th>
              </tr>
            </thead>
            <tbody>
              {records.map((r) => (
                <tr>
                  <td>{when(r.occurred_at)}</td>
                  <td>{r.message_type}</td>
                  <td>{r.entity ?? "—"}</td>
                  <td>{r.actor}</td>
                  <td>
                    <code>{r.correlation_id.slice(0, 8)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <p aria-live="polite" class="muted">
        {busy ? "Working…" : records ? `${records.length} records shown, newest first.` : ""}
      </p>
      {next && !busy && (
        <button type="button" onClick={() => search(next)}>
          Load more
        </button>
      )}
    </section>
  );
}
