-- Optional indexes that make scans read the due connections instead of the
-- fleet (README, "Indexes"). The token refresher works without them: it then
-- walks every active connection on every scan, and says so once at start.
-- Both are plain secondary indexes. InnoDB builds them online (ALGORITHM=INPLACE,
-- LOCK=NONE), without blocking the writes of the services that own the tables.

-- A range of it is what entered the refresh window since the last scan.
CREATE INDEX IF NOT EXISTS ie_appinstall_connection_expiry
  ON integration_engine_prod.ie_appinstall_connection (accessTokenExpiryAt);

-- Finds the channels of the connections a scan read, by id.
CREATE INDEX IF NOT EXISTS channels_connection
  ON eshopbox_wms_production.channels (connectionId);
