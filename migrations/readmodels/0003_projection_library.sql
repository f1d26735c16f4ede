-- Generations, rebuild requests and the fencing lease are now kept by
-- libs/projection in schema `projection` (created by the library itself,
-- see libs/projection/src/bookkeeping.sql), keyed by projection name, and a
-- generation's schema is `<projection>_gen_<n>`. The read models of the old
-- layout (`gen_<n>`) are dropped with their views: on its first start the
-- projector builds generation 1 of the new layout by replaying the topics
-- (events are kept forever) and creates the `rm` views again.
DO $$
DECLARE
    old_schema TEXT;
BEGIN
    FOR old_schema IN SELECT nspname FROM pg_namespace WHERE nspname ~ '^gen_[0-9]+$' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', old_schema);
    END LOOP;
END
$$;
DROP TABLE projection_generations;
DROP TABLE rebuild_requests;
