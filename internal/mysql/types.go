package mysql

import (
	"context"
	"fmt"
)

// IntegrationTypes returns the integration types of a connection's active
// channels (channels.integrationType where connectionId = id and status
// '0'), for a one-shot try that has only the connection id.
func (s *Store) IntegrationTypes(ctx context.Context, id int64) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	var types []string
	if err := s.wms.SelectContext(ctx, &types, `
		SELECT DISTINCT integrationType FROM channels WHERE connectionId = ? AND status = '0' ORDER BY integrationType`, id); err != nil {
		return nil, fmt.Errorf("read the channels of connection %d: %w", id, err)
	}
	return types, nil
}
