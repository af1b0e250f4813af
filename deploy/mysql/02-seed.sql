-- The seed document's two Ajio Dropship connections (integration type 16),
-- both with a token that expired long ago, so the first scan refreshes them.
-- Beside them, one OAuth2 refresh connection (integration type 42) and one
-- Unicommerce connection (integration type 43), never refreshed yet, whose
-- credentials the sandbox marketplace accepts: the default sandbox OAuth
-- client with sandbox.RefreshToken("seller-4201"), and the generated seller
-- seller-4301@sandbox.test with sandbox.Password of that name.

INSERT INTO eshopbox_wms_production.channels (connectionId, integrationType, status) VALUES
  (11, '16', '0'),
  (99, '16', '0'),
  (4201, '42', '0'),
  (4301, '43', '0');

INSERT INTO integration_engine_prod.ie_appinstall_connection
  (id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES
  (11, '{"username":"abc@itc.com","password":"abc123"}',   NULL, NULL, '2022-08-17 16:25:08', 'active'),
  (99, '{"username":"brand@itc.com","password":"pqr123"}', NULL, NULL, '2022-08-17 16:25:08', 'active'),
  (4201, '{"client_id":"sandbox-client","client_secret":"sandbox-client-secret"}',
      NULL, 'sbx-rt-seller-4201.3f17d00618c82e94', NULL, 'active'),
  (4301, '{"username":"seller-4301@sandbox.test","password":"pw-c720256dafe8"}',
      NULL, NULL, NULL, 'active');
