-- Each audit entry's seal: the HMAC-SHA256 of its hash under a key kept outside the database
-- (derived from the connection secret key), so an entry edited and re-hashed by someone who can
-- write to the database no longer verifies. NULL for entries written without a key.
ALTER TABLE audit_log ADD COLUMN mac TEXT;
