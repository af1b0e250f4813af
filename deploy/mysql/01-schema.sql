-- Dev/test schema of the two production tables, with only the columns the
-- token refresher reads and writes (the production tables have more).
-- Database A (channels) and database B (connections) may live on two servers.

CREATE DATABASE IF NOT EXISTS eshopbox_wms_production;
CREATE DATABASE IF NOT EXISTS integration_engine_prod;

CREATE TABLE IF NOT EXISTS eshopbox_wms_production.channels (
  connectionId    BIGINT      NOT NULL,
  integrationType VARCHAR(32) NOT NULL,
  status          VARCHAR(8)  NOT NULL,
  -- The scanner pages active ids of one type by keyset on this index.
  KEY channels_type_status_connection (integrationType, status, connectionId)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS integration_engine_prod.ie_appinstall_connection (
  id                  BIGINT      NOT NULL PRIMARY KEY,
  inputFields         TEXT        NULL,  -- JSON object of the seller's credentials
  accessToken         TEXT        NULL,
  refreshToken        TEXT        NULL,
  accessTokenExpiryAt DATETIME    NULL,  -- when the stored token expires, NULL = never generated
  isActive            VARCHAR(16) NOT NULL DEFAULT 'active'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
