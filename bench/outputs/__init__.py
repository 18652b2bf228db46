"""What a run leaves: result records and their schema, leaderboards, reports, figures, the proxy-validity table."""
