-- A streaming sync loads, for each page of source users, only the desk users and agents that page can
-- match or change (RecordScope::Lookup): by this connection's external id, by Azure object id, and by
-- email, network login or name, each compared lower-cased. These indexes make every part of that
-- lookup an index search, so a page costs its own size, not the desk's.
CREATE INDEX users_by_source_lower ON users (source_connection_id, lower(external_id));
CREATE INDEX agents_by_source_lower ON agents (source_connection_id, lower(external_id));
CREATE INDEX users_by_object_id_lower ON users (lower(azure_object_id));
CREATE INDEX agents_by_object_id_lower ON agents (lower(azure_object_id));
CREATE INDEX users_by_name_lower ON users (lower(name));
CREATE INDEX agents_by_name_lower ON agents (lower(name));
CREATE INDEX agents_by_network_login ON agents (lower(network_login));
