// The pieces every page shares: an error said aloud, a list's footer, and
// the paging of a GraphQL connection.

import { useEffect, useState } from "preact/hooks";

import { ApiError } from "./api";

/** A page of a GraphQL connection. */
export interface Connection<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/**
 * A list read a page at a time with `fetchPage(after)`, from the start
 * again whenever `deps` change; `failure` is said when a page cannot be
 * read for another reason than the API's.
 */
export function usePaged<T>(fetchPage: (after: string | null) => Promise<Connection<T>>, failure: string, deps: unknown[]) {
  const [rows, setRows] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const load = async (after: string | null) => {
    setLoading(true);
    setError(null);
    try {
      const page = await fetchPage(after);
      setRows((before) => (after ? [...before, ...page.nodes] : page.nodes));
      setNext(page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.message} (${e.code})` : failure);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    load(null);
  }, deps);
  return { rows, loading, error, more: next ? () => load(next) : null };
}

/** An error, announced to screen readers (`role="alert"`); nothing without one. */
export function Alert({ message }: { message: string | null }) {
  return message ? (
    <p role="alert" class="error">
      {message}
    </p>
  ) : null;
}

/** Where a list stands (announced politely), and the button for more. */
export function ListFooter(props: { loading: boolean; count: number; noun: string; none: string; more: (() => void) | null }) {
  const { loading, count, noun, none, more } = props;
  return (
    <>
      <p aria-live="polite" class="muted">
        {loading ? "Loading…" : count === 0 ? none : `${count} ${noun} shown.`}
      </p>
      {more && !loading && (
        <button type="button" onClick={more}>
          Load more
        </button>
      )}
    </>
  );
}
