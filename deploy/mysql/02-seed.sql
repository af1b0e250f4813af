-- The seed document's two Ajio Dropship connections (integration type 16),
-- both with a token that expired long ago, so the first scan refreshes them.

INSERT INTO eshopbox_wms_production.channels (connectionId, integrationType, status) VALUES
  (11, '16', '0'),
  (99, '16', '0');

INSERT INTO integration_engine_prod.ie_appinstall_connection
  (id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES
  (11, '{"username":"abc@itc.com","password":"abc123"}',   NULL, NULL, '2022-08-17 16:25:08', 'active'),
  (99, '{"username":"brand@itc.com","password":"pqr123"}', NULL, NULL, '2022-08-17 16:25:08', 'active');
