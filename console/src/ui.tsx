// The pieces every page shares: an error said aloud, and a list's footer.

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
