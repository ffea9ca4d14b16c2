-- Requests in flight of one AI type, earliest expiry first, without reading other AI types' holds.
CREATE INDEX IF NOT EXISTS token_reservations_ai_state_expires ON token_reservations (ai_type, state, expires_at);
