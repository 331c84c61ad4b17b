-- When each account last signed in (RFC 3339, set by a successful sign-in; NULL until the first),
-- so administrators of many tenants can see accounts nobody uses any more (`deskbridge admin list`,
-- the Accounts page, GET /api/v1/accounts).
ALTER TABLE accounts ADD COLUMN last_sign_in_at TEXT;
