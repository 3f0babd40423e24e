"""Traffic plane: one route file driving a mitmproxy addon and a rendered nginx config."""
