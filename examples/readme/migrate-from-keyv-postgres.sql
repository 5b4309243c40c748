-- Copy the live entries of @keyv/postgres' table (default "keyv") into the cache table, with their expiry.
-- Values are Keyv's JSON envelope (Keyv's default serializer), which PgStore stores the same way.
INSERT INTO public.cache (id, value, expiresattime, absoluteexpiration)
SELECT key, convert_to(value, 'UTF8'), coalesce(expires, 'infinity'), expires
FROM (
  SELECT key, value, to_timestamp((value::jsonb ->> 'expires')::numeric / 1000) AS expires
  FROM public.keyv
) AS entries
WHERE expires IS NULL OR expires > now()
ON CONFLICT (id) DO NOTHING;
